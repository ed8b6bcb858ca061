//! Request lines as the server reads them, and the lines it writes, through
//! `sluice_server::protocol`.

use serde_json::json;
use sluice_server::protocol::{
    Publish, PublishReply, Pushed, ReplyLine, Request, RequestLine, ServerLine, Start, Subscribe,
    SubscribeReply,
};

fn error_of(line: &str) -> (Option<serde_json::Value>, String) {
    match RequestLine::parse(line) {
        Ok(parsed) => panic!("{line} read as {parsed:?}"),
        Err(bad) => (bad.id, bad.error),
    }
}

#[test]
fn bad_lines_are_told_what_is_wrong_with_them() {
    let cases = [
        ("not json", "the line is not JSON"),
        ("[1, 2]", "a request is a JSON object with an \"op\""),
        (
            r#"{"id": 5}"#,
            "a request needs an \"op\" (ping, auth, sql,",
        ),
        (r#"{"op": "fly"}"#, "unknown op 'fly' (ping, auth, sql,"),
        (r#"{"op": 7}"#, "\"op\" names the request"),
        (r#"{"op": "sql"}"#, "missing field `sql`"),
        (
            r#"{"op": "sql", "sql": 5}"#,
            "\"sql\": invalid type: integer `5`",
        ),
        (
            r#"{"op": "ack", "subscription": 1, "partition": "0", "offset": 0}"#,
            "\"partition\": invalid type: string \"0\"",
        ),
        (
            r#"{"op": "subscribe", "stream": "s", "from": "soon"}"#,
            "\"from\": expected \"earliest\", \"latest\", an offset or {\"time\": ms}",
        ),
        (
            r#"{"op": "publish", "stream": "s", "events": {}}"#,
            "\"events\": invalid type: map",
        ),
    ];
    for (line, expected) in cases {
        let (_, error) = error_of(line);
        assert!(error.contains(expected), "{line} gave {error}");
    }
}

#[test]
fn an_error_carries_the_id_of_an_object() {
    assert_eq!(error_of(r#"{"op": "fly", "id": 7}"#).0, Some(json!(7)));
    assert_eq!(error_of(r#"{"op": "sql", "id": "a"}"#).0, Some(json!("a")));
    assert_eq!(error_of(r#"{"id": [1]}"#).0, Some(json!([1])));
    assert_eq!(error_of("[1]").0, None);
}

#[test]
fn fields_the_op_does_not_have_are_let_be() {
    let parsed = RequestLine::parse(r#"{"op": "ping", "pad": "xxxx", "id": null}"#);
    let Ok(parsed) = parsed else {
        panic!("{parsed:?}");
    };
    assert_eq!(parsed.id, Some(json!(null)));
    assert_eq!(parsed.request.op_name(), "ping");
}

#[test]
fn requests_are_written_with_the_fields_clients_sent_before() {
    let publish = RequestLine {
        id: Some(json!(3)),
        request: Publish::events("clicks", vec![json!({"user_id": "u1"})]).into(),
    };
    assert_eq!(
        serde_json::to_value(&publish).ok(),
        Some(json!({"id": 3, "op": "publish", "stream": "clicks", "events": [{"user_id": "u1"}]}))
    );
    let subscribe = Request::from(Subscribe {
        query: Some("q1".into()),
        from: Some(Start::Time(1_000)),
        ..Subscribe::default()
    });
    assert_eq!(
        serde_json::to_value(&subscribe).ok(),
        Some(json!({"op": "subscribe", "query": "q1", "from": {"time": 1_000}}))
    );
}

#[test]
fn replies_and_pushed_lines_read_as_their_types() {
    let line = r#"{"id":2,"ok":true,"partitions":[0,1],"subscription":4}"#;
    let Ok(ServerLine::Reply(reply)) = serde_json::from_str::<ServerLine>(line) else {
        panic!("{line} is not a reply");
    };
    assert_eq!(reply.id, Some(json!(2)));
    assert_eq!(
        reply.into_reply::<SubscribeReply>(),
        Ok(SubscribeReply {
            subscription: 4,
            partitions: vec![0, 1],
        })
    );
    let line = r#"{"appended":[{"count":2,"offset":0,"partition":1}],"ok":true}"#;
    let reply: Result<ReplyLine, _> = serde_json::from_str(line);
    let published = reply
        .map_err(|e| e.to_string())
        .and_then(ReplyLine::into_reply);
    let published: PublishReply = match published {
        Ok(published) => published,
        Err(error) => panic!("{line}: {error}"),
    };
    assert_eq!(published.appended[0].count, 2);
    let line = r#"{"error":"no stream 'x'","id":"a","ok":false}"#;
    let reply: Result<ReplyLine, _> = serde_json::from_str(line);
    let reply = reply
        .map_err(|e| e.to_string())
        .and_then(ReplyLine::into_reply::<PublishReply>);
    assert_eq!(reply, Err("no stream 'x'".to_string()));

    let line = r#"{"subscription":1,"partition":0,"offset":5,"row":{"op":"+I","user_id":"u1"}}"#;
    let Ok(ServerLine::Pushed(Pushed::Row { offset, row, .. })) = serde_json::from_str(line) else {
        panic!("{line} is not a row");
    };
    assert_eq!((offset, &row["op"]), (5, &json!("+I")));
    // Notices are written as they always were.
    let warning = Pushed::Warning {
        subscription: 1,
        warning: "near".into(),
    };
    let error = Pushed::Error {
        error: "alert 'a' was dropped".into(),
        subscription: 3,
    };
    assert_eq!(
        serde_json::to_string(&warning).ok().as_deref(),
        Some(r#"{"subscription":1,"warning":"near"}"#)
    );
    assert_eq!(
        serde_json::to_string(&error).ok().as_deref(),
        Some(r#"{"error":"alert 'a' was dropped","subscription":3}"#)
    );
    for pushed in [warning, error] {
        let line = serde_json::to_string(&pushed).unwrap_or_default();
        assert_eq!(serde_json::from_str::<Pushed>(&line).ok(), Some(pushed));
    }
}
