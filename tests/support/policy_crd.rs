//! The simulated API server, in process, with the Policy CRD established: where the tests of
//! the brain's Policy watcher start.
#![allow(dead_code)]

use std::sync::Arc;

use homeostat_core::{ManualClock, Timestamp};
use homeostat_simulations::apiserver::{ApiServer, ApiServerHandle, DEFAULT_ADDR, ObjectStore};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, PostParams};

/// A server on loopback with the Policy CRD created, its clock, and a client of it.
pub async fn server_with_policy_crd() -> (ApiServerHandle, Arc<ManualClock>, kube::Client) {
    let clock = Arc::new(ManualClock::new(Timestamp::from_secs(1_700_000_000)));
    let server = ApiServer::start(ObjectStore::new(clock.clone()), DEFAULT_ADDR)
        .await
        .expect("server");
    let client = server.kube_client().expect("client");
    let crd: CustomResourceDefinition =
        serde_json::from_value(homeostat_policies::crd::definition()).expect("a typed CRD");
    Api::<CustomResourceDefinition>::all(client.clone())
        .create(&PostParams::default(), &crd)
        .await
        .expect("CRD created");
    (server, clock, client)
}
