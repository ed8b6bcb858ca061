//! Completion on test files held in memory: what it rewrites and what it keeps.

use super::*;

const TABLE: &str = "\
# Two cases over one stream.

statement ok
CREATE TABLE t (k STRING, v BIGINT, ts TIMESTAMP(3), WATERMARK FOR ts AS ts);

statement ok
SELECT k, v FROM t;
";

fn file(first_rows: &str, second_rows: &str) -> String {
    format!(
        "{TABLE}
input t
k,v,ts
a,1,2024-01-01 00:00:00

# the first case
output q1
op,k,v
{first_rows}

input t
k,v,ts
b,2,2024-01-01 00:00:01


# the second case, after two blank lines
output q1
op,k,v
{second_rows}
"
    )
}

fn completed(text: &str) -> String {
    complete_test_file(text).unwrap_or_else(|failure| panic!("completion failed: {failure}"))
}

#[test]
fn wrong_rows_are_replaced_and_the_rest_kept() {
    let wrong = file("+I,a,1", "+I,b,3\n+I,c,4");
    let failure = run_test_file(&wrong).err().map(|failure| failure.line);
    assert_eq!(failure, Some(24));
    assert_eq!(completed(&wrong), file("+I,a,1", "+I,b,2"));
}

#[test]
fn a_file_whose_expectations_hold_comes_back_byte_for_byte() {
    let right = file("+I,a,1", "+I,b,2");
    assert!(run_test_file(&right).is_ok());
    assert_eq!(completed(&right), right);
    let crlf = right.replace('\n', "\r\n");
    assert_eq!(completed(&crlf), crlf);
}

#[test]
fn empty_expectations_are_filled_in() {
    let placeholders = format!(
        "{TABLE}
statement rows
DESCRIBE t

statement error
SELECT nosuch FROM t;

input t
k,v,ts
a,1,2024-01-01 00:00:00
b,x,2024-01-01 00:00:00

output q1
"
    );
    let filled = completed(&placeholders);
    assert!(run_test_file(&filled).is_ok(), "{filled}");
    assert!(filled.starts_with(TABLE), "{filled}");
    assert!(
        filled.contains("DESCRIBE t\n----\ncolumn,type,nullable,extra\nk,STRING,YES,\n"),
        "{filled}"
    );
    let error_line = filled
        .lines()
        .find(|line| line.starts_with("statement error"))
        .unwrap_or_default();
    assert!(error_line.contains("nosuch"), "{filled}");
    assert!(
        filled.contains("b,x,2024-01-01 00:00:00\n----\n3: column "),
        "{filled}"
    );
    assert!(filled.ends_with("output q1\nop,k,v\n+I,a,1\n"), "{filled}");
    assert_eq!(completed(&filled), filled);
}

#[test]
fn statements_that_fail_or_succeed_unexpectedly_change_directive() {
    let text = format!(
        "{TABLE}
statement ok
SELECT nosuch FROM t;

statement error this fails
SELECT k FROM t;
"
    );
    let fixed = completed(&text);
    let directives: Vec<&str> = fixed
        .lines()
        .filter(|line| line.starts_with("statement"))
        .collect();
    assert_eq!(directives.len(), 4);
    assert!(directives[2].starts_with("statement error "), "{fixed}");
    assert!(directives[2].contains("nosuch"), "{fixed}");
    assert_eq!(directives[3], "statement ok");
    assert!(run_test_file(&fixed).is_ok(), "{fixed}");
}

#[test]
fn rows_no_block_checks_still_fail() {
    let text = file("+I,a,1", "+I,b,2").replace("# the second case", "# the end");
    let unchecked = text.replace(
        "\n# the end, after two blank lines\noutput q1\nop,k,v\n+I,b,2",
        "",
    );
    assert!(complete_test_file(&unchecked).is_err());
}
