#!/usr/bin/env python3
"""Times the statements one /login-2fa (and /me) runs on SQLite, on the
table layouts before and after migration 0006, over copies of one database
seeded by bench/run with a server from before 0006 (e.g. `bench/run
--backend sqlite --bin OLD` with a build of d74066c~1: target/bench-run/sqlite/
db.sqlite, or pass its path). Reads run on a second connection after a commit of the
first, as the service's readers do (a commit empties their page cache).

  bench/layouts.py [DB]      prints µs per statement, old and new layout

Python's own cost per call is in both columns alike; the difference is the
layout's."""
import os, random, shutil, sqlite3, sys, tempfile, time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SOURCE = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "target/bench-run/sqlite/db.sqlite")
MIGRATION = os.path.join(ROOT, "migrations/sqlite/0006_login_btrees.sql")
N = 5000

FIND_CHALLENGE = {
    "old": "SELECT c.user_id FROM mfa_challenges c JOIN users u ON u.id = c.user_id "
           "WHERE c.token_hash = ? AND c.expires_at > ? AND u.username_key = ?",
    "new": "SELECT user_id FROM mfa_challenges "
           "WHERE token_hash = ? AND expires_at > ? AND username_key = ?",
}
FIND_SESSION = ("SELECT u.id, u.username, s.public_id FROM sessions s JOIN users u ON u.id = s.user_id "
                "WHERE s.token_hash = ? AND s.expires_at > ?")


def open_source():
    """The seeded database, read-only: it is only ever copied."""
    return sqlite3.connect(f"file:{SOURCE}?mode=ro", uri=True)


def copy(layout, tmp):
    path = os.path.join(tmp, f"{layout}.sqlite")
    src = open_source()
    dst = sqlite3.connect(path)
    src.backup(dst)
    src.close()
    if layout == "new":
        with open(MIGRATION) as f:
            dst.executescript(f.read())
    dst.execute("PRAGMA journal_mode = WAL")
    dst.close()
    return path


def measure(layout, path):
    w = sqlite3.connect(path, isolation_level=None)
    w.execute("PRAGMA synchronous = OFF")
    r = sqlite3.connect(path, isolation_level=None)
    challenges = w.execute(
        "SELECT c.token_hash, u.username_key FROM mfa_challenges c JOIN users u ON u.id = c.user_id").fetchall()
    sessions = [k for (k,) in w.execute("SELECT token_hash FROM sessions")]
    users = w.execute("SELECT id, username_key FROM users").fetchall()
    out = {}

    def read(name, sql, args_of, pool):
        total = 0.0
        for i in range(N):
            # A real change, so the reader's page cache is emptied as in the service.
            w.execute("INSERT INTO throttles VALUES ('layouts', 'password', ?, 0, 0) "
                      "ON CONFLICT DO UPDATE SET failures = excluded.failures", (i,))
            args = args_of(random.choice(pool))
            t = time.perf_counter()
            row = r.execute(sql, args).fetchone()
            total += time.perf_counter() - t
            assert row, name
        out[name] = total / N * 1e6

    read("find challenge", FIND_CHALLENGE[layout], lambda c: (c[0], 0, c[1]), challenges)
    read("find session (/me)", FIND_SESSION, lambda k: (k, 0), sessions)

    def write(name, step):
        w.execute("BEGIN")
        t = time.perf_counter()
        for i in range(N):
            step(i, random.choice(users))
        out[name] = (time.perf_counter() - t) / N * 1e6
        w.execute("ROLLBACK")

    now = 2_000_000_000
    def challenge(i, user):
        key = (now * 1_000_000 + i).to_bytes(8, "big") + os.urandom(32)
        if layout == "new":
            w.execute("INSERT INTO mfa_challenges (token_hash, user_id, username_key, expires_at) "
                      "VALUES (?, ?, ?, ?)", (key, user[0], user[1], now))
        else:
            w.execute("INSERT INTO mfa_challenges (token_hash, user_id, expires_at) VALUES (?, ?, ?)",
                      (key, user[0], now))
        w.execute("DELETE FROM mfa_challenges WHERE token_hash = ? AND user_id = ? AND expires_at > ?",
                  (key, user[0], 0))
    write("store + spend challenge", challenge)
    write("insert session", lambda i, user: w.execute(
        "INSERT INTO sessions (token_hash, public_id, user_id, created_at, expires_at, client_addr, user_agent) "
        "VALUES (?, ?, ?, ?, ?, ?, ?)",
        ((now * 1_000_000 + i).to_bytes(8, "big") + os.urandom(32), f"{now:016x}{i:016x}", user[0], now,
         now + 43200, "127.0.0.1:40000", "wrk")))
    write("insert audit event", lambda i, user: w.execute(
        "INSERT INTO audit_events (at, username, user_id, event, detail, client_addr, user_agent) "
        "VALUES (?, ?, ?, ?, ?, ?, ?)",
        (now + i, user[1], user[0], "second_factor.success", "factor=totp", "127.0.0.1:40000", "wrk")))
    w.close()
    r.close()
    return out


def main():
    if not os.path.exists(SOURCE):
        sys.exit(f"bench/layouts.py: no database at {SOURCE}")
    db = open_source()
    try:
        (version,) = db.execute("SELECT max(version) FROM _sqlx_migrations").fetchone()
    except sqlite3.DatabaseError:
        sys.exit(f"bench/layouts.py: {SOURCE} is not a database seeded by bench/run")
    finally:
        db.close()
    if version != 5:
        sys.exit(f"bench/layouts.py: {SOURCE} is at migration {version}; it needs one seeded "
                 "before 0006 (bench/run --bin with a build of d74066c~1)")
    with tempfile.TemporaryDirectory() as tmp:
        paths = {layout: copy(layout, tmp) for layout in ("old", "new")}
        runs = {"old": [], "new": []}
        for _ in range(3):  # alternated, so drift in the machine's speed hits both
            for layout in ("old", "new"):
                runs[layout].append(measure(layout, paths[layout]))
        print(f"{'statement':26} {'old µs':>8} {'new µs':>8}")
        for name in runs["old"][0]:
            old = sorted(r[name] for r in runs["old"])[1]
            new = sorted(r[name] for r in runs["new"])[1]
            print(f"{name:26} {old:8.2f} {new:8.2f}")


if __name__ == "__main__":
    main()
