//! Encryption tests: age round trip with a generated X25519 identity, ciphertext carries no
//! WebM/ZIP magic, and ssh-rsa recipients parse.

use crate::media;
use conclave_archive::digest::sha256_file;
use conclave_archive::encrypt::{ArchiveRecipient, encrypt_file};
use std::io::Read;

fn sample(dir: &std::path::Path, magic: &[u8]) -> std::path::PathBuf {
    let p = dir.join("plain.bin");
    let mut data = magic.to_vec();
    data.extend((0..300_000u32).map(|i| (i * 7 % 251) as u8));
    std::fs::write(&p, data).unwrap();
    p
}

#[test]
fn x25519_round_trip_and_no_plaintext_magic() {
    let (_d, dir) = media::tmp();
    let identity = age::x25519::Identity::generate();
    let recipient = ArchiveRecipient::parse(&identity.to_public().to_string()).unwrap();
    for (i, magic) in [&[0x1a, 0x45, 0xdf, 0xa3][..], b"PK\x03\x04"].into_iter().enumerate() {
        let plain = sample(&dir, magic);
        let enc = dir.join(format!("out{i}.age"));
        let info = encrypt_file(&plain, &enc, &recipient).unwrap();
        let ct = std::fs::read(&enc).unwrap();
        assert_eq!(info.size, ct.len() as u64);
        assert_eq!(info.sha256, sha256_file(&enc).unwrap());
        assert!(ct.starts_with(b"age-encryption.org/v1\n"));
        assert!(!ct.windows(4).any(|w| w == magic), "plaintext magic found in ciphertext");
        let dec = age::Decryptor::new(&ct[..]).unwrap();
        let mut r = dec.decrypt(std::iter::once(&identity as &dyn age::Identity)).unwrap();
        let mut got = Vec::new();
        r.read_to_end(&mut got).unwrap();
        assert_eq!(got, std::fs::read(&plain).unwrap());
        assert!(encrypt_file(&plain, &enc, &recipient).is_err(), "refuses to overwrite");
    }
}

#[test]
fn ssh_rsa_round_trip() {
    let (_d, dir) = media::tmp();
    let key = dir.join("id_rsa");
    let st = std::process::Command::new("ssh-keygen")
        .args(["-q", "-t", "rsa", "-b", "2048", "-N", "", "-f"])
        .arg(&key)
        .status()
        .expect("ssh-keygen is required for this test (apt-get install -y openssh-client)");
    assert!(st.success());
    let public = std::fs::read_to_string(key.with_extension("pub")).unwrap();
    let recipient = ArchiveRecipient::parse(&public).unwrap();
    assert!(matches!(recipient, ArchiveRecipient::Ssh(_)));
    let plain = sample(&dir, b"PK\x03\x04");
    let enc = dir.join("out.age");
    encrypt_file(&plain, &enc, &recipient).unwrap();
    let private = std::fs::read(&key).unwrap();
    let identity = age::ssh::Identity::from_buffer(&private[..], None).unwrap();
    let ct = std::fs::read(&enc).unwrap();
    let mut r =
        age::Decryptor::new(&ct[..]).unwrap().decrypt(std::iter::once(&identity as &dyn age::Identity)).unwrap();
    let mut got = Vec::new();
    r.read_to_end(&mut got).unwrap();
    assert_eq!(got, std::fs::read(&plain).unwrap());
}

#[test]
fn bad_recipients_are_refused() {
    assert!(ArchiveRecipient::parse("age1notakey").is_err());
    assert!(ArchiveRecipient::parse("ssh-rsa AAAA").is_err());
    assert!(ArchiveRecipient::parse("hello").is_err());
}

/// `ssh-keygen` RSA key in PEM form (openssl can read it) and its `.pub` line.
fn rsa_key(dir: &std::path::Path) -> (std::path::PathBuf, String) {
    let key = dir.join("id_rsa");
    let st = std::process::Command::new("ssh-keygen")
        .args(["-q", "-t", "rsa", "-b", "2048", "-m", "PEM", "-N", "", "-f"])
        .arg(&key)
        .status()
        .expect("ssh-keygen is required for this test (apt-get install -y openssh-client)");
    assert!(st.success());
    let public = std::fs::read_to_string(key.with_extension("pub")).unwrap();
    (key, public)
}

fn tool(bin: &str, args: &[&std::ffi::OsStr]) -> String {
    let out = std::process::Command::new(bin)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{bin} is required for this test: {e}"));
    assert!(out.status.success(), "{bin}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn pem_public_keys_and_certificates_become_ssh_rsa_recipients() {
    let (_d, dir) = media::tmp();
    let (key, public) = rsa_key(&dir);
    let pub_file = key.with_extension("pub");
    let spki =
        tool("ssh-keygen", &["-e".as_ref(), "-m".as_ref(), "PKCS8".as_ref(), "-f".as_ref(), pub_file.as_os_str()]);
    assert!(spki.starts_with("-----BEGIN PUBLIC KEY-----"));
    let pkcs1 =
        tool("ssh-keygen", &["-e".as_ref(), "-m".as_ref(), "PEM".as_ref(), "-f".as_ref(), pub_file.as_os_str()]);
    assert!(pkcs1.starts_with("-----BEGIN RSA PUBLIC KEY-----"));
    let cert = tool(
        "openssl",
        &[
            "req".as_ref(),
            "-new".as_ref(),
            "-x509".as_ref(),
            "-key".as_ref(),
            key.as_os_str(),
            "-subj".as_ref(),
            "/CN=partner".as_ref(),
            "-days".as_ref(),
            "2".as_ref(),
        ],
    );
    assert!(cert.starts_with("-----BEGIN CERTIFICATE-----"));
    let plain = sample(&dir, b"PK\x03\x04");
    let want = std::fs::read(&plain).unwrap();
    let id_file = key.clone();
    for (i, pem) in [spki, pkcs1, cert].iter().enumerate() {
        let r = ArchiveRecipient::parse(pem).unwrap();
        let ArchiveRecipient::Ssh(ssh) = &r else { panic!("not an ssh recipient") };
        // Same key as the OpenSSH line: age's recipient stanza tag is derived from it.
        let direct: age::ssh::Recipient = public.trim().parse().unwrap();
        assert_eq!(format!("{ssh:?}"), format!("{direct:?}"));
        let enc = dir.join(format!("pem{i}.age"));
        encrypt_file(&plain, &enc, &r).unwrap();
        let (ok, got, err) = media::age_cli_decrypt(&id_file, &enc);
        assert!(ok, "age -d with the RSA key failed: {err}");
        assert_eq!(got, want);
    }
    let ec_or_junk = "-----BEGIN PUBLIC KEY-----\nMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE\n-----END PUBLIC KEY-----\n";
    assert!(ArchiveRecipient::parse(ec_or_junk).is_err());
}
