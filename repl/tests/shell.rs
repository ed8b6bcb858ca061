//! The interactive shell driven in a pseudo-terminal, on the embedded engine and against a
//! running `sluice serve`.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use rexpect::session::{PtySession, spawn_command};

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

const CLICKS: &str = "CREATE TABLE clicks (user_id STRING, url STRING, ts TIMESTAMP(3), \
    WATERMARK FOR ts AS ts - INTERVAL '1' SECOND);";

fn shell(args: &[&str], home: &std::path::Path) -> Result<PtySession> {
    let mut command = Command::new(env!("CARGO_BIN_EXE_sluice"));
    command.args(args).env("HOME", home).env("TERM", "xterm");
    let mut session = spawn_command(command, Some(30_000))?;
    session.exp_string("sluice> ")?;
    Ok(session)
}

#[test]
fn the_shell_runs_statements_shows_live_rows_and_cancels() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let data = dir.path().join("data");
    let data = data.to_str().ok_or("a path that is not UTF-8")?;
    let mut p = shell(&["repl", "--data-dir", data], dir.path())?;
    p.send_line(CLICKS)?;
    p.exp_string("created stream clicks")?;
    // A statement over two lines.
    p.send_line("SELECT user_id, url")?;
    p.exp_string("-> ")?;
    p.send_line("FROM clicks WHERE url <> '/skip';")?;
    p.exp_string("q1: running")?;
    p.send_line(
        "INSERT INTO clicks VALUES ('u1', '/home', TIMESTAMP '2024-01-01 10:00:00'), \
         ('u2', '/skip', TIMESTAMP '2024-01-01 10:00:01'), \
         ('u3', '/cart', TIMESTAMP '2024-01-01 10:00:02');",
    )?;
    p.exp_string("inserted 3 row(s) into clicks")?;
    p.exp_regex(r"q1:\r\n[^\n]*\n[^\n]*op[^\n]*user_id[^\n]*url")?;
    p.exp_regex(r"\+I[^\n]*u1[^\n]*/home")?;
    p.exp_regex(r"\+I[^\n]*u3[^\n]*/cart")?;
    p.send_line("\\list")?;
    p.exp_regex(r"q1[^\n]*foreground[^\n]* 2 ")?;
    // Ctrl-C cancels the foreground query, not the shell.
    p.send_control('c')?;
    p.exp_string("cancelled q1")?;
    p.send_line("\\list")?;
    p.exp_string("no queries")?;
    // Errors are one line, with the position marked when the error names one.
    p.send_line("SELECT user_id FROM clicks WHER url = 'x';")?;
    p.exp_regex(r"error: [^\n]*Line: 1, Column: \d+")?;
    p.exp_string("^")?;
    p.send_line("SELECT nope FROM clicks;")?;
    p.exp_string("error: ")?;
    p.exp_string("nope")?;
    p.send_line("\\frobnicate")?;
    p.exp_string("unknown command \\frobnicate")?;
    p.send_control('c')?;
    p.exp_string("Ctrl-D or \\quit leaves")?;
    p.send_control('d')?;
    p.exp_eof()?;

    // The data directory is consistent: the stream and its rows are there again.
    let mut p = shell(&["repl", "--data-dir", data], dir.path())?;
    p.send_line("SHOW TABLES;")?;
    p.exp_string("clicks")?;
    p.send_line("\\quit")?;
    p.exp_eof()?;
    Ok(())
}

#[test]
fn the_shell_drives_a_running_server() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let mut server = Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--token",
            "s3cret",
            "--data-dir",
        ])
        .arg(dir.path().join("data"))
        .stderr(Stdio::piped())
        .spawn()?;
    let stderr = server.stderr.take().ok_or("no stderr")?;
    let mut first = String::new();
    BufReader::new(stderr).read_line(&mut first)?;
    let address = first
        .trim()
        .strip_prefix("sluice: listening on ")
        .ok_or_else(|| format!("the server did not start: {first}"))?
        .to_string();
    let csv = dir.path().join("clicks.csv");
    std::fs::write(
        &csv,
        "user_id,url,ts\nu1,/home,2024-01-01 10:00:00\nu2,/cart,2024-01-01 10:00:05\n",
    )?;
    let csv = csv.to_str().ok_or("a path that is not UTF-8")?;
    let outcome = (|| -> Result<()> {
        let mut p = shell(
            &["repl", "--connect", &address, "--token", "s3cret"],
            dir.path(),
        )?;
        p.send_line(CLICKS)?;
        p.exp_string("created stream clicks")?;
        p.send_line("\\tail clicks")?;
        p.exp_string("tail:clicks: showing rows")?;
        p.send_line(&format!("\\publish clicks {csv}"))?;
        p.exp_string("100% 2 rows")?;
        p.exp_regex(r"\+I[^\n]*u1[^\n]*/home")?;
        p.exp_regex(r"\+I[^\n]*u2[^\n]*/cart")?;
        p.send_control('c')?;
        p.exp_string("cancelled tail:clicks")?;
        p.send_control('d')?;
        p.exp_eof()?;
        Ok(())
    })();
    let _ = server.kill();
    let _ = server.wait();
    outcome
}

#[test]
fn the_demo_runs_headless_and_every_query_shows_rows() -> Result<()> {
    let output = Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(["demo", "--seconds", "5", "--speed", "10"])
        .output()?;
    let stdout = String::from_utf8(output.stdout)?;
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    for query in [
        "dashboard",
        "card_testing",
        "big_spenders",
        "listing_prices",
    ] {
        // A table under the query's name: border, header, border, then a row.
        let shown = stdout.split(&format!("\n{query}:\n")).skip(1).any(|table| {
            let lines: Vec<&str> = table.lines().take(4).collect();
            lines.len() == 4 && lines[1].contains(" op ") && lines[3].contains(" +I ")
        });
        assert!(shown, "no rows of {query} in:\n{stdout}");
    }
    assert!(
        stdout.contains(" timeout "),
        "no card-testing timeout in:\n{stdout}"
    );
    Ok(())
}
