//! What the requests of one connection share: the server, whether the client has
//! authenticated, its subscriptions, and the queue its pushed lines go out through.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use crate::core::Core;
use crate::{ServeError, Shared};

pub(crate) struct Context {
    pub shared: Arc<Shared>,
    /// The client's address, for throttling wrong tokens.
    pub peer: IpAddr,
    pub authenticated: bool,
    /// Wrong tokens sent so far.
    pub failed_auths: u32,
    /// The connection ends after the current reply.
    pub closing: bool,
    /// Lines to the socket: replies and pushed rows.
    pub outgoing: mpsc::Sender<String>,
    /// The tasks pushing each subscription's rows.
    pub subscriptions: BTreeMap<u64, JoinHandle<()>>,
    /// To tell when the current request's reply is sent (a subscription starts pushing
    /// rows after its reply).
    pub sent: Option<oneshot::Sender<()>>,
}

impl Context {
    pub(crate) fn new(
        shared: Arc<Shared>,
        peer: IpAddr,
        outgoing: mpsc::Sender<String>,
    ) -> Context {
        Context {
            authenticated: shared.config.token.is_none(),
            peer,
            failed_auths: 0,
            closing: false,
            shared,
            outgoing,
            subscriptions: BTreeMap::new(),
            sent: None,
        }
    }

    /// Runs `work` on the core, off the connection's thread, once every publish
    /// acknowledged before it has been fed to the queries (so it sees them).
    pub(crate) async fn with_core<T: Send + 'static>(
        &self,
        work: impl FnOnce(&mut Core) -> Result<T, ServeError> + Send + 'static,
    ) -> Result<T, ServeError> {
        let shared = Arc::clone(&self.shared);
        tokio::task::spawn_blocking(move || {
            let unavailable = || ServeError::Request("the server's state is unavailable".into());
            let acknowledged = shared.streams.lock()?.durable_stamp();
            let mut core = shared.core.lock().map_err(|_| unavailable())?;
            while core.fed_stamp() < acknowledged {
                core = shared.fed.wait(core).map_err(|_| unavailable())?;
            }
            work(&mut core)
        })
        .await
        .map_err(|e| ServeError::Request(e.to_string()))?
    }
}
