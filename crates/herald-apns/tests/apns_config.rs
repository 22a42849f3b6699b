//! Building a gateway: what the server's `[apps.apns]` gives, and the
//! errors that explain themselves without showing a secret.

use std::sync::Arc;

use herald_apns::{ApnsConfig, ApnsError, ApnsGateway};
use herald_core::Tick;
use herald_testkit::mock_apns::TestApnsKey;
use herald_testkit::tls::TestCa;
use herald_testkit::{ManualClock, TempDir};

fn clock() -> Arc<ManualClock> {
    Arc::new(ManualClock::new(Tick::from_millis(1_700_000_000_000)))
}

#[test]
fn from_files_reads_the_key_and_the_extra_roots() {
    let dir = TempDir::new("apns-config");
    std::fs::create_dir_all(&dir.0).unwrap();
    let key = TestApnsKey::generate();
    let key_file = key.write_p8(&dir.0);
    let ca_file = TestCa::new().write_ca_file(&dir.0);
    let config = ApnsConfig::from_files(
        &key_file,
        &key.key_id,
        &key.team_id,
        "com.example.app",
        herald_apns::SANDBOX_URL,
        Some(&ca_file),
    )
    .unwrap();
    assert_eq!(config.base_url, "https://api.sandbox.push.apple.com");
    assert_eq!(config.key_file.as_deref(), Some(key_file.as_path()));
    let debug = format!("{config:?}");
    assert!(
        debug.contains("<redacted>") && !debug.contains("PRIVATE KEY"),
        "{debug}"
    );
    let gateway = ApnsGateway::new(config, clock()).unwrap();
    let debug = format!("{gateway:?}");
    assert!(
        !debug.contains("PRIVATE KEY") && !debug.contains("bearer"),
        "{debug}"
    );
    assert!(debug.contains("<redacted>"), "{debug}");
    assert_eq!(
        gateway.stats().provider_tokens_signed,
        1,
        "the key signs at once"
    );
    assert_eq!(
        gateway.stats().pool.connections_opened,
        0,
        "no connection before a send"
    );
}

#[test]
fn a_bad_key_is_an_error_naming_the_file_never_its_content() {
    let dir = TempDir::new("apns-bad-key");
    std::fs::create_dir_all(&dir.0).unwrap();
    let key = TestApnsKey::generate();
    let missing = dir.0.join("AuthKey_MISSING.p8");
    let e = ApnsConfig::from_files(&missing, "K", "T", "t", herald_apns::PRODUCTION_URL, None)
        .unwrap_err();
    assert!(matches!(e, ApnsError::KeyFile { .. }));
    assert!(e.to_string().contains("AuthKey_MISSING.p8"), "{e}");

    // The public half, a P-384 key, text that is no key at all.
    let p384 = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P384_SHA384)
        .unwrap()
        .serialize_pem();
    for (name, text) in [
        ("public.p8", key.public_pem.as_str()),
        ("p384.p8", p384.as_str()),
        ("garbage.p8", "SECRET-LOOKING-TEXT"),
    ] {
        let path = dir.0.join(name);
        std::fs::write(&path, text).unwrap();
        let config = ApnsConfig::from_files(
            &path,
            "KEYID00001",
            "TEAMID0001",
            "com.example.app",
            herald_apns::PRODUCTION_URL,
            None,
        )
        .unwrap();
        let e = ApnsGateway::new(config, clock()).unwrap_err();
        assert!(matches!(e, ApnsError::Key { .. }), "{name}: {e:?}");
        let text_of = e.to_string();
        assert!(text_of.contains(name), "{text_of}");
        assert!(
            !text_of.contains("SECRET") && !text_of.contains("BEGIN"),
            "{text_of}"
        );
        let lines: Vec<&str> = text
            .lines()
            .filter(|l| l.len() > 8 && !l.starts_with("-----"))
            .collect();
        for line in lines {
            assert!(
                !text_of.contains(line) && !format!("{e:?}").contains(line),
                "{text_of}"
            );
        }
    }
}

#[test]
fn settings_that_cannot_work_are_refused() {
    let key = TestApnsKey::generate();
    let tls = herald_http2::client_tls(None).unwrap();
    let base = ApnsConfig::new(
        key.private_pem.clone(),
        key.key_id.clone(),
        key.team_id.clone(),
        "com.example.app",
        herald_apns::PRODUCTION_URL,
        tls,
    );
    let refused = |config: ApnsConfig| ApnsGateway::new(config, clock()).unwrap_err();
    let e = refused(ApnsConfig {
        topic: "com example".into(),
        ..base.clone()
    });
    assert!(
        matches!(e, ApnsError::Setting { field: "topic", .. }),
        "{e}"
    );
    let e = refused(ApnsConfig {
        key_id: String::new(),
        ..base.clone()
    });
    assert!(
        matches!(
            e,
            ApnsError::Setting {
                field: "key_id",
                ..
            }
        ),
        "{e}"
    );
    let e = refused(ApnsConfig {
        team_id: "a b".into(),
        ..base.clone()
    });
    assert!(
        matches!(
            e,
            ApnsError::Setting {
                field: "team_id",
                ..
            }
        ),
        "{e}"
    );
    let e = refused(ApnsConfig {
        base_url: "http://api.push.apple.com".into(),
        ..base.clone()
    });
    assert!(matches!(e, ApnsError::Url(_)), "{e}");
    let e = refused(ApnsConfig {
        key_pem: String::new(),
        ..base.clone()
    });
    assert!(e.to_string().contains("(given as text)"), "{e}");
    assert!(ApnsGateway::new(base, clock()).is_ok());
}
