//! The line protocol's types, for clients and the server alike: [`Request`] and each op's
//! request and reply, the reply envelope ([`ReplyLine`]) and the lines pushed for
//! subscriptions ([`Pushed`]). `docs/protocol.md` describes them.
//!
//! A request goes out as one line, `serde_json::to_string(&RequestLine { id, request })`;
//! a line that comes back reads as a [`ServerLine`].

pub use crate::op::{
    Ack, AckReply, Appended, Auth, AuthReply, BadLine, Cancel, CancelReply, FailedEntry, List,
    ListReply, Op, Ping, PingReply, Publish, PublishReply, Pushed, Quit, QuitReply, Register,
    RegisterReply, RejectedEvent, ReplyLine, Request, RequestLine, ServerLine, Sql, SqlReply,
    Start, Stats, StatsReply, Subscribe, SubscribeReply, Unsubscribe, UnsubscribeReply,
};
