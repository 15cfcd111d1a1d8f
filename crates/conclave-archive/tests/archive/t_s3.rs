//! S3 tests against a real moto server: small PutObject and >5 MiB multipart uploads read
//! back with object_store GET and compared by sha256; `check_target`; and a dead endpoint
//! that must fail with an error (so a caller can fall back), not panic or hang.

use crate::media;
use crate::moto::{Moto, free_port};
use conclave_archive::digest::{sha256_bytes, sha256_file};
use conclave_archive::upload::{S3Config, S3Target};
use object_store::ObjectStoreExt;
use object_store::path::Path as ObjectPath;
use std::time::{Duration, Instant};

fn config(endpoint: String) -> S3Config {
    let mut c = S3Config::new("archives", "us-east-1", "testing", "testing");
    c.endpoint = Some(endpoint);
    c.path_style = true;
    c.prefix = "conclave/47000001".into();
    c
}

async fn read_back(t: &S3Target, key: &str) -> Vec<u8> {
    let got = t.store().get(&ObjectPath::parse(key).unwrap()).await.unwrap();
    got.bytes().await.unwrap().to_vec()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upload_small_and_multipart_then_read_back() {
    let moto = Moto::start();
    moto.create_bucket("archives");
    let (_d, dir) = media::tmp();
    for sse in [false, true] {
        let mut cfg = config(moto.endpoint());
        cfg.sse_s3 = sse;
        let target = S3Target::new(&cfg).unwrap();
        assert!(target.check_target().await.unwrap().starts_with("conclave/47000001/conclave-check-"));
        for (name, len) in [("small.zip", 100_000usize), ("big.zip", 13 * 1024 * 1024 + 12345)] {
            let path = dir.join(name);
            std::fs::write(&path, (0..len).map(|i| (i * 31 % 253) as u8).collect::<Vec<_>>()).unwrap();
            let res = target.upload_file(&path, name).await.unwrap();
            assert_eq!(res.key, format!("conclave/47000001/{name}"));
            assert_eq!(res.size, len as u64);
            assert_eq!(res.multipart, len > conclave_archive::upload::PART_SIZE);
            assert_eq!(res.sha256, sha256_file(&path).unwrap());
            let back = read_back(&target, &res.key).await;
            assert_eq!(sha256_bytes(&back), res.sha256, "{name} sse={sse}");
        }
    }
}

#[tokio::test]
async fn upload_to_closed_port_fails_with_error() {
    let port = free_port(); // nothing listens here
    let mut cfg = config(format!("http://127.0.0.1:{port}"));
    cfg.max_retries = 1;
    cfg.retry_timeout = Duration::from_secs(5);
    let target = S3Target::new(&cfg).unwrap();
    let (_d, dir) = media::tmp();
    let path = dir.join("x.zip");
    std::fs::write(&path, b"PK\x03\x04").unwrap();
    let t = Instant::now();
    let err = target.upload_file(&path, "x.zip").await.unwrap_err();
    assert!(t.elapsed() < Duration::from_secs(30), "took {:?}", t.elapsed());
    assert!(matches!(err, conclave_archive::ArchiveError::Store(_)), "{err}");
    assert!(target.check_target().await.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn put_object_only_policy_is_enough() {
    let moto = Moto::start_with_auth(4);
    moto.create_bucket("archives");
    let (key, secret) = moto.put_only_user("archives");
    let mut cfg = config(moto.endpoint());
    cfg.access_key_id = key;
    cfg.secret_access_key = secret.clone();
    cfg.sse_s3 = true;
    cfg.max_retries = 0;
    let target = S3Target::new(&cfg).unwrap();
    target.check_target().await.unwrap();
    let (_d, dir) = media::tmp();
    for (name, len) in [("small.zip", 1000usize), ("big.zip", 9 * 1024 * 1024)] {
        let path = dir.join(name);
        std::fs::write(&path, vec![7u8; len]).unwrap();
        let res = target.upload_file(&path, name).await.unwrap();
        assert_eq!(res.multipart, len > conclave_archive::upload::PART_SIZE);
    }
    let denied = target.store().get(&ObjectPath::parse("conclave/47000001/small.zip").unwrap()).await;
    assert!(denied.is_err(), "GET must be denied by the PutObject-only policy");
    cfg.secret_access_key = format!("{secret}x");
    let bad = S3Target::new(&cfg).unwrap();
    assert!(bad.check_target().await.is_err(), "wrong secret must be rejected");
}
