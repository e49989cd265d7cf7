//! A JetStream cluster as its monitoring endpoint `/jsz` shows it: a stream's replicas,
//! its leader and whether the followers are current. Used by the cluster tests of
//! `coordctl up --cluster` and `coordctl up --offices … --cluster`.

use std::time::Duration;

use serde_json::Value;
use tokio::time::Instant;

/// The monitoring endpoint `/jsz` (accounts, streams and their configuration) of the
/// server on `port`, if it answers.
pub async fn jsz(port: u16) -> Option<Value> {
    let url = format!("http://127.0.0.1:{port}/jsz?accounts=true&streams=true&config=true");
    reqwest::get(url).await.ok()?.json().await.ok()
}

/// The stream `name` in a server's `/jsz`.
pub fn stream_of(jsz: &Value, name: &str) -> Option<Value> {
    jsz["account_details"]
        .as_array()?
        .iter()
        .flat_map(|a| a["stream_detail"].as_array().cloned().unwrap_or_default())
        .find(|s| s["name"] == name)
}

/// The stream `name` as the monitoring endpoint `/jsz` of the server on `port` shows it.
pub async fn stream_in_jsz(port: u16, name: &str) -> Option<Value> {
    stream_of(&jsz(port).await?, name)
}

/// Polls `/jsz` of the server on `port` (at most 20 s) until `done` holds for stream
/// `name`; returns the stream's detail.
pub async fn jsz_until(port: u16, name: &str, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let stream = stream_in_jsz(port, name).await;
        if let Some(s) = stream.as_ref().filter(|s| done(s)) {
            return s.clone();
        }
        assert!(Instant::now() < deadline, "{name} at :{port}: {stream:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Three replicas and a leader, as one server sees them (the other two as peers).
pub fn three_replicas_with_a_leader(s: &Value) -> bool {
    s["config"]["num_replicas"] == 3
        && s["cluster"]["leader"]
            .as_str()
            .is_some_and(|l| !l.is_empty())
        && s["cluster"]["replicas"].as_array().map(Vec::len) == Some(2)
}

/// As the leader sees them: both followers current.
pub fn followers_current(s: &Value) -> bool {
    three_replicas_with_a_leader(s)
        && s["cluster"]["replicas"]
            .as_array()
            .is_some_and(|r| r.iter().all(|f| f["current"] == true))
}

/// Stream `name` at 3 replicas on each of the three servers monitored from `monitor`
/// on, with a leader whose followers are current; returns the leader's view. Servers
/// are named `<anything>-<n>`, the `n`-th monitored on `monitor + n - 1`.
pub async fn replicated_with_leader(monitor: u16, name: &str) -> Value {
    let mut leader = String::new();
    for offset in 0..3 {
        let s = jsz_until(monitor + offset, name, three_replicas_with_a_leader).await;
        leader = s["cluster"]["leader"].as_str().unwrap().to_owned();
    }
    let n: u16 = leader
        .rsplit('-')
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("a server name ending in its number: {leader}"));
    jsz_until(monitor + n - 1, name, followers_current).await
}
