//! Security suite items not covered by a capability's own tests: session ID brute force,
//! and what an attacker learns from guesses.

mod common;

use common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_guessed_session_ids_are_refused_without_leaking_existence() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let p = create_project(&data);
    let other = create_project(&data);
    let server = Server::start(&data, &["--rest-rate-per-ip", "0", "--rest-rate-per-key", "0"]);
    let http = reqwest::Client::new();
    let sdk = conclave_sdk::Client::new(&other.api_key, &other.api_secret, &server.base).unwrap();
    // A real session of another project must look exactly like a session that does not exist.
    let foreign = sdk.create_session(&conclave_sdk::SessionOptions::default()).await.unwrap().session_id;
    let get = |id: String| {
        let http = http.clone();
        let url = format!("{}/v2/project/{}/session/{id}", server.base, p.api_key);
        let auth = rest_jwt(&p);
        async move {
            let r = http.get(url).header("X-OPENTOK-AUTH", auth).send().await.unwrap();
            (r.status().as_u16(), r.text().await.unwrap())
        }
    };
    let reference = get(foreign.clone()).await;
    assert_eq!(reference.0, 404);
    let mut seen = std::collections::HashSet::new();
    for i in 0..1000u32 {
        let mut random = [0u8; conclave_core::ids::SESSION_RANDOM_BYTES];
        getrandom(&mut random);
        let parts = conclave_core::ids::SessionIdParts {
            api_key: &p.api_key,
            location: None,
            created_ms: 1_700_000_000_000 + u64::from(i),
            random,
            relayed: i % 2 == 0,
        };
        let id = conclave_core::SessionId::mint(&parts);
        assert!(seen.insert(id.as_str().to_owned()));
        let got = get(id.as_str().to_owned()).await;
        assert_eq!(got, reference, "guess {i} answered differently from a foreign session");
    }
}

fn getrandom(buf: &mut [u8]) {
    use std::io::Read;
    std::fs::File::open("/dev/urandom").unwrap().read_exact(buf).unwrap();
}
