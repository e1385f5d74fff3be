//! Running the `twofactor` binary as an operator would: on a test app's
//! database and key file, free of any `TWOFACTOR_*` variables of the
//! environment, with assertions on how it ended.

use std::path::Path;
use std::process::{ExitStatus, Stdio};

use serde_json::Value;

use super::helpers::TestApp;
use super::process::BIN;

/// One finished run of the binary.
pub struct Run {
    pub args: Vec<String>,
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    /// Asserts a zero exit.
    #[track_caller]
    pub fn success(&self) -> &Self {
        assert!(
            self.status.success(),
            "twofactor {:?} failed ({}):\nstdout: {}\nstderr: {}",
            self.args,
            self.status,
            self.stdout,
            self.stderr
        );
        self
    }

    /// Asserts a non-zero exit whose stderr says `message`.
    #[track_caller]
    pub fn failure(&self, message: &str) -> &Self {
        assert!(
            !self.status.success(),
            "twofactor {:?} should fail, but exited {}:\nstdout: {}",
            self.args,
            self.status,
            self.stdout
        );
        assert!(
            self.stderr.contains(message),
            "stderr of twofactor {:?} should say {message:?}: {}",
            self.args,
            self.stderr
        );
        self
    }

    /// Standard output as JSON.
    #[track_caller]
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| {
            panic!(
                "stdout of {:?} is not JSON ({e}): {}",
                self.args, self.stdout
            )
        })
    }

    /// Standard output of a successful run as a JSON array.
    #[track_caller]
    pub fn json_array(&self) -> Vec<Value> {
        self.success();
        let value = self.json();
        value
            .as_array()
            .unwrap_or_else(|| panic!("{:?} printed {value}, not an array", self.args))
            .clone()
    }
}

/// Runs the binary with exactly `args`.
pub async fn twofactor(args: &[&str]) -> Run {
    let mut cmd = tokio::process::Command::new(BIN);
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("TWOFACTOR_") {
            cmd.env_remove(&name);
        }
    }
    let out = cmd
        .args(args)
        .stdin(Stdio::null())
        .output()
        .await
        .expect("run twofactor");
    Run {
        args: args.iter().map(|s| s.to_string()).collect(),
        status: out.status,
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Runs a command on `app`'s database with its key file.
pub async fn op(app: &TestApp, args: &[&str]) -> Run {
    op_with_key(app, &app.config.encryption_key_file, args).await
}

/// Runs a command on `app`'s database with another key file.
pub async fn op_with_key(app: &TestApp, key: &Path, args: &[&str]) -> Run {
    let key = key.display().to_string();
    let mut all = args.to_vec();
    all.extend(["--database-url", &app.database_url]);
    all.extend(["--encryption-key-file", &key]);
    twofactor(&all).await
}
