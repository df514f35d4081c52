//! The brain's leader election against the simulated API server: one leader, conditional
//! takeover of an expired Lease, immediate hand-over on release, no two leaders when racing.

mod support;

use std::time::{Duration, Instant};

use homeostat_brain::leader::{ElectionConfig, Elector};
use homeostat_simulations::apiserver::FaultConfig;
use k8s_openapi::api::coordination::v1::Lease;
use kube::Api;
use tokio::sync::watch;

type TestResult = Result<(), Box<dyn std::error::Error>>;

/// Short times, so expiry is seen within the test (a Lease counts whole seconds).
fn config(identity: &str) -> ElectionConfig {
    ElectionConfig {
        lease_duration: Duration::from_secs(2),
        renew_deadline: Duration::from_millis(1200),
        retry_period: Duration::from_millis(200),
        ..ElectionConfig::new("default", "homeostat-brain", identity)
    }
}

async fn holder(client: &kube::Client) -> Result<Option<String>, kube::Error> {
    let lease = Api::<Lease>::namespaced(client.clone(), "default")
        .get("homeostat-brain")
        .await?;
    Ok(lease.spec.and_then(|s| s.holder_identity))
}

#[tokio::test]
async fn one_leads_the_other_takes_over_only_once_the_lease_expires() -> TestResult {
    let (server, client) = support::server(FaultConfig::default()).await?;
    let mut a = Elector::new(client.clone(), config("brain-a"));
    let mut b = Elector::new(server.kube_client()?, config("brain-b"));
    assert!(
        a.try_acquire_or_renew().await?,
        "the first candidate creates the lease"
    );
    assert!(!b.try_acquire_or_renew().await?, "the lease is held");
    assert!(a.try_acquire_or_renew().await? && a.leading(), "renewed");
    assert_eq!(holder(&client).await?.as_deref(), Some("brain-a"));

    // brain-a stops renewing (as if killed): brain-b follows until the lease has gone
    // unrenewed for its duration, by its own clock, then takes it.
    let stopped = Instant::now();
    let taken = loop {
        if b.try_acquire_or_renew().await? {
            break stopped.elapsed();
        }
        assert!(
            stopped.elapsed() < Duration::from_secs(5),
            "never taken over"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(
        taken >= Duration::from_millis(1900),
        "taken over early: {taken:?}"
    );
    assert!(!a.leading(), "a replica that cannot renew stops acting");
    assert!(b.leading());
    assert!(
        !a.try_acquire_or_renew().await?,
        "brain-a comes back as a follower"
    );
    let lease = Api::<Lease>::namespaced(client.clone(), "default")
        .get("homeostat-brain")
        .await?;
    let spec = lease.spec.unwrap_or_default();
    assert_eq!(spec.holder_identity.as_deref(), Some("brain-b"));
    assert_eq!(spec.lease_transitions, Some(1));

    // A clean stop releases the lease: brain-a takes it at its next try, without waiting.
    b.release().await?;
    assert!(!b.leading());
    assert_eq!(holder(&client).await?, None);
    assert!(
        a.try_acquire_or_renew().await?,
        "taken at once after a release"
    );
    server.shutdown().await?;
    Ok(())
}

#[tokio::test]
async fn candidates_racing_for_a_free_lease_never_both_lead() -> TestResult {
    let (server, client) = support::server(FaultConfig::default()).await?;
    for round in 0..10 {
        let mut a = Elector::new(client.clone(), config(&format!("a-{round}")));
        let mut b = Elector::new(server.kube_client()?, config(&format!("b-{round}")));
        let (ra, rb) = tokio::join!(a.try_acquire_or_renew(), b.try_acquire_or_renew());
        let (ra, rb) = (ra?, rb?);
        assert!(ra ^ rb, "round {round}: a leads {ra}, b leads {rb}");
        let winner = if ra { &mut a } else { &mut b };
        winner.release().await?;
    }
    server.shutdown().await?;
    Ok(())
}

#[tokio::test]
async fn the_election_loop_hands_over_when_the_leader_dies_and_releases_on_stop() -> TestResult {
    let (server, client) = support::server(FaultConfig::default()).await?;
    let (stop_tx, stop) = watch::channel(false);
    let (a_tx, a_leads) = watch::channel(false);
    let a = tokio::spawn(Elector::new(client.clone(), config("brain-a")).run(a_tx, stop.clone()));
    let mut a_leads_rx = a_leads.clone();
    tokio::time::timeout(Duration::from_secs(3), a_leads_rx.wait_for(|l| *l)).await??;
    let (b_tx, mut b_leads) = watch::channel(false);
    let b = tokio::spawn(Elector::new(server.kube_client()?, config("brain-b")).run(b_tx, stop));
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert!(!*b_leads.borrow(), "a follower while brain-a renews");

    // brain-a dies without a word.
    a.abort();
    let died = Instant::now();
    tokio::time::timeout(Duration::from_secs(5), b_leads.wait_for(|l| *l)).await??;
    assert!(
        died.elapsed() < Duration::from_millis(3500),
        "{:?}",
        died.elapsed()
    );
    assert_eq!(holder(&client).await?.as_deref(), Some("brain-b"));

    // brain-b stops cleanly: the lease is left free.
    stop_tx.send_replace(true);
    b.await?;
    assert!(!*b_leads.borrow());
    assert_eq!(holder(&client).await?, None);
    server.shutdown().await?;
    Ok(())
}
