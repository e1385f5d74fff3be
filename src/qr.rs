//! QR images of a provisioning URI: PNG (hand-assembled from the module grid
//! with the `png` encoder, which spares the whole `image` crate) and SVG
//! (the `qrcode` crate's own renderer).

use anyhow::Context;
use qrcode::{Color, EcLevel, QrCode};

/// Pixels per QR module in the PNG.
const SCALE: usize = 8;
/// Light modules around the code, as the QR specification asks.
const QUIET_ZONE: usize = 4;

/// A PNG image encoding `text`.
pub fn png(text: &str) -> anyhow::Result<Vec<u8>> {
    let code = QrCode::with_error_correction_level(text, EcLevel::M).context("QR encoding")?;
    let modules = code.width();
    let colors = code.to_colors();
    let side = (modules + 2 * QUIET_ZONE) * SCALE;
    let mut pixels = vec![255u8; side * side];
    for (i, color) in colors.iter().enumerate() {
        if *color != Color::Dark {
            continue;
        }
        let (x, y) = (i % modules + QUIET_ZONE, i / modules + QUIET_ZONE);
        for row in y * SCALE..(y + 1) * SCALE {
            pixels[row * side + x * SCALE..row * side + (x + 1) * SCALE].fill(0);
        }
    }
    let mut out = Vec::new();
    let side = u32::try_from(side).context("QR image size")?;
    let mut encoder = png::Encoder::new(&mut out, side, side);
    encoder.set_color(png::ColorType::Grayscale);
    encoder.set_depth(png::BitDepth::Eight);
    let mut writer = encoder.write_header().context("PNG header")?;
    writer.write_image_data(&pixels).context("PNG data")?;
    writer.finish().context("PNG end")?;
    Ok(out)
}

/// An SVG image encoding `text`.
pub fn svg(text: &str) -> anyhow::Result<String> {
    let code = QrCode::with_error_correction_level(text, EcLevel::M).context("QR encoding")?;
    Ok(code
        .render::<qrcode::render::svg::Color>()
        .min_dimensions(256, 256)
        .quiet_zone(true)
        .build())
}

#[cfg(test)]
mod tests {
    #[test]
    fn both_formats_render_a_long_uri() {
        let uri = format!(
            "otpauth://totp/Acme%20Corp:{}?secret={}",
            "a".repeat(64),
            "A".repeat(32)
        );
        let png = super::png(&uri).unwrap();
        assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
        assert!(super::svg(&uri).unwrap().contains("<svg"));
    }
}
