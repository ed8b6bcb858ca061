//! The interactive shell driven in a pseudo-terminal, on the embedded engine and against a
//! running `sluice serve`.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use rexpect::session::{PtySession, spawn_command};

mod support;

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

const CLICKS: &str = "CREATE TABLE clicks (user_id STRING, url STRING, ts TIMESTAMP(3), \
    WATERMARK FOR ts AS ts - INTERVAL '1' SECOND);";

/// Waits until every one of `patterns` has been printed, in any order (a query's rows and
/// the reply to the statement that caused them may come either way round); gives what was
/// printed meanwhile.
fn expect_all(session: &mut PtySession, patterns: &[&str]) -> Result<String> {
    let regexes = patterns
        .iter()
        .map(|p| regex::Regex::new(p))
        .collect::<std::result::Result<Vec<_>, _>>()?;
    let any = patterns
        .iter()
        .map(|p| format!("(?:{p})"))
        .collect::<Vec<_>>()
        .join("|");
    let mut seen = String::new();
    while !regexes.iter().all(|r| r.is_match(&seen)) {
        let (before, matched) = session.exp_regex(&any)?;
        seen.push_str(&before);
        seen.push_str(&matched);
    }
    Ok(seen)
}

/// Presses Ctrl-`key` once the prompt is reading (keys typed while the shell is busy go
/// to the terminal's line discipline, which drops a Ctrl-D).
fn press(session: &mut PtySession, key: char) -> Result<()> {
    session.exp_string("sluice> ")?;
    session.send_control(key)?;
    Ok(())
}

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
    let printed = expect_all(
        &mut p,
        &[
            r"inserted 3 row\(s\) into clicks",
            r"q1:\r\n[^\n]*\n[^\n]*op[^\n]*user_id[^\n]*url",
            r"\+I[^\n]*u1[^\n]*/home",
            r"\+I[^\n]*u3[^\n]*/cart",
        ],
    )?;
    assert!(
        !printed.contains("/skip "),
        "a filtered row was shown: {printed}"
    );
    p.send_line("\\list")?;
    p.exp_regex(r"q1[^\n]*foreground[^\n]* 2 ")?;
    // Muted, a query's rows are not shown; shown again, the next ones are.
    p.send_line("\\bg")?;
    p.exp_string("q1 runs in the background, muted")?;
    p.send_line("INSERT INTO clicks VALUES ('u5', '/muted', TIMESTAMP '2024-01-01 10:00:05');")?;
    p.exp_string("inserted 1 row(s) into clicks")?;
    p.send_line("\\fg q1")?;
    p.exp_string("q1 shown")?;
    p.send_line("INSERT INTO clicks VALUES ('u6', '/shown', TIMESTAMP '2024-01-01 10:00:06');")?;
    let before = expect_all(
        &mut p,
        &[
            r"inserted 1 row\(s\) into clicks",
            r"\+I[^\n]*u6[^\n]*/shown",
        ],
    )?;
    let muted_row = before.lines().any(|l| l.contains("+I") && l.contains("u5"));
    assert!(!muted_row, "a muted row was shown: {before}");
    p.send_line("\\explain SELECT url FROM clicks WHERE url <> '/'")?;
    p.exp_regex(r"1[^\n]*filter[^\n]*0")?;
    // Ctrl-C cancels the foreground query, not the shell.
    press(&mut p, 'c')?;
    p.exp_string("cancelled q1")?;
    p.send_line("\\list")?;
    p.exp_string("no queries")?;
    // Errors are one line, with the position marked when the error names one.
    p.send_line("SELECT user_id FROM clicks WHER url = 'x';")?;
    p.exp_regex(r"error: [^\n]*Line: 1, Column: \d+")?;
    p.exp_string("^")?;
    p.send_line("SELECT nope FROM clicks;")?;
    p.exp_regex(
        r"error: No field named nope\. [^\n]*\r\n\s+SELECT nope FROM clicks\r\n\s+\^\^\^\^",
    )?;
    let script = dir.path().join("views.sql");
    std::fs::write(
        &script,
        "-- a view, then a look at it\nCREATE VIEW homes AS SELECT * FROM clicks WHERE url = '/home';\nSHOW VIEWS;\n",
    )?;
    p.send_line(&format!("\\load {}", script.display()))?;
    p.exp_string("created view homes")?;
    p.exp_regex(r"[^\n]*homes[^\n]*\r\n")?;
    p.send_line("\\frobnicate")?;
    p.exp_string("unknown command \\frobnicate")?;
    press(&mut p, 'c')?;
    p.exp_string("Ctrl-D or \\quit leaves")?;
    press(&mut p, 'd')?;
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
fn alerts_are_registered_shown_and_loaded_in_bulk_in_the_shell() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let mut p = shell(&["repl", "--memory"], dir.path())?;
    p.send_line(CLICKS)?;
    p.exp_string("created stream clicks")?;
    p.send_line("CREATE ALERT home_visit ON clicks WHERE url = '/home' AND user_id LIKE 'u1%';")?;
    p.exp_string("alert:home_visit: its firings appear above the prompt")?;
    p.send_line(
        "INSERT INTO clicks VALUES ('u1', '/home', TIMESTAMP '2024-01-01 10:00:00'), \
         ('u2', '/home', TIMESTAMP '2024-01-01 10:00:01'), \
         ('u12', '/home', TIMESTAMP '2024-01-01 10:00:02');",
    )?;
    let printed = expect_all(
        &mut p,
        &[
            r"inserted 3 row\(s\) into clicks",
            r"alert:home_visit:\r\n[^\n]*\n[^\n]*op[^\n]*alert[^\n]*user_id[^\n]*url",
            r"\+I[^\n]*home_visit[^\n]*u1 [^\n]*/home",
            r"\+I[^\n]*home_visit[^\n]*u12[^\n]*/home",
        ],
    )?;
    assert!(
        !printed.contains(" u2 "),
        "a row that fires nothing was shown: {printed}"
    );
    // A bad condition: a clear error, and no alert.
    p.send_line("CREATE ALERT broken ON clicks WHERE url > 3 +;")?;
    p.exp_regex(r"error: [^\n]*")?;
    // Many alerts from a file: one request, summed up.
    let script = dir.path().join("alerts.sql");
    let alerts: String = (0..300)
        .map(|n| format!("CREATE ALERT page{n} ON clicks WHERE url = '/page/{n}';\n"))
        .collect();
    std::fs::write(&script, alerts)?;
    p.send_line(&format!("\\load {}", script.display()))?;
    p.exp_string("created 300 alert(s)")?;
    p.send_line("SHOW ALERTS;")?;
    p.exp_regex(r"page299[^\n]*clicks[^\n]*url = '/page/299'")?;
    // Ctrl-C stops showing the alert; it stays registered.
    press(&mut p, 'c')?;
    p.exp_string("stopped showing alert:home_visit")?;
    p.send_line("DROP ALERT home_visit;")?;
    p.exp_string("dropped alert home_visit")?;
    p.send_line("DROP ALERT broken;")?;
    p.exp_string("error: unknown alert 'broken'")?;
    p.send_line("\\quit")?;
    p.exp_eof()?;
    Ok(())
}

#[test]
fn the_shell_drives_a_running_server() -> Result<()> {
    let dir = tempfile::tempdir()?;
    drive_a_running_server(dir.path(), &[], &[])
}

#[test]
fn the_shell_drives_a_running_server_over_tls() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let (cert, key) = support::self_signed_certificate(dir.path());
    drive_a_running_server(
        dir.path(),
        &["--tls-cert", &cert, "--tls-key", &key],
        &["--tls-ca", &cert],
    )
}

/// Starts `sluice serve` with `server_args`, and drives it from the shell started with
/// `shell_args`: a stream created, tailed and published to from a file.
fn drive_a_running_server(
    dir: &std::path::Path,
    server_args: &[&str],
    shell_args: &[&str],
) -> Result<()> {
    let mut server = Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--token",
            "s3cret",
            "--data-dir",
        ])
        .arg(dir.join("data"))
        .args(server_args)
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
    let csv = dir.join("clicks.csv");
    std::fs::write(
        &csv,
        "user_id,url,ts\nu1,/home,2024-01-01 10:00:00\nu2,/cart,2024-01-01 10:00:05\n",
    )?;
    let csv = csv.to_str().ok_or("a path that is not UTF-8")?;
    let outcome = (|| -> Result<()> {
        let mut args = vec!["repl", "--connect", &address, "--token", "s3cret"];
        args.extend_from_slice(shell_args);
        let mut p = shell(&args, dir)?;
        p.send_line(CLICKS)?;
        p.exp_string("created stream clicks")?;
        p.send_line("\\tail clicks")?;
        p.exp_string("tail:clicks: showing rows")?;
        p.send_line(&format!("\\publish clicks {csv}"))?;
        expect_all(
            &mut p,
            &[
                r"100% 2 rows",
                r"\+I[^\n]*u1[^\n]*/home",
                r"\+I[^\n]*u2[^\n]*/cart",
            ],
        )?;
        press(&mut p, 'c')?;
        p.exp_string("stopped showing tail:clicks")?;
        press(&mut p, 'd')?;
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
        "alerts on listings",
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
    assert!(
        stdout.contains(" bargain "),
        "no firing of the alert 'bargain' in:\n{stdout}"
    );
    Ok(())
}
