//! What the API server tests share.

use std::sync::Arc;

use homeostat_core::clock::{ManualClock, Timestamp};
use homeostat_simulations::apiserver::{
    ApiServer, ApiServerHandle, DEFAULT_ADDR, FaultConfig, ObjectStore,
};
use kube::Client;

/// A server with `faults`, and a client that does not retry, so every answer reaches the test
/// (kube's default client retries 429s on its own).
pub async fn server(
    faults: FaultConfig,
) -> Result<(ApiServerHandle, Client), Box<dyn std::error::Error>> {
    let clock = ManualClock::new(Timestamp::from_secs(1_700_000_000));
    let store = ObjectStore::new(Arc::new(clock));
    let handle = ApiServer::start_with_faults(store, DEFAULT_ADDR, faults).await?;
    let mut config = kube::Config::new(handle.url().parse()?);
    config.default_retry = false;
    Ok((handle, Client::try_from(config)?))
}
