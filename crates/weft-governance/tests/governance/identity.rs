//! Identity: first-start admin, principals, tokens, credentials, and keeping secrets out of sight.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use weft_governance::codes;
use weft_governance::identity::{
    ADMIN_PRINCIPAL, AuthError, Credentials, IdentityError, IdentityStore, TokenSecret, parse_authorization_header,
};

fn at(secs: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(secs)
}

const T0: u64 = 1_800_000_000;

fn store() -> (tempfile::TempDir, IdentityStore) {
    let dir = tempfile::tempdir().unwrap();
    let store = IdentityStore::open_in(dir.path()).unwrap();
    (dir, store)
}

fn basic_header(user: &str, password: &str) -> Vec<u8> {
    // A tiny base64 encoder, so the test does not share the decoder under test.
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let plain = format!("{user}:{password}").into_bytes();
    let mut encoded = String::new();
    for chunk in plain.chunks(3) {
        let group = (u32::from(chunk[0]) << 16) | (u32::from(*chunk.get(1).unwrap_or(&0)) << 8) | u32::from(*chunk.get(2).unwrap_or(&0));
        for sextet_idx in 0..4 {
            if sextet_idx <= chunk.len() {
                encoded.push(ALPHABET[((group >> (18 - 6 * sextet_idx)) & 63) as usize] as char);
            } else {
                encoded.push('=');
            }
        }
    }
    format!("Basic {encoded}").into_bytes()
}

#[test]
fn bootstrap_admin_writes_a_private_token_file_once() {
    let (dir, store) = store();
    let path = store.bootstrap_admin(dir.path(), at(T0)).unwrap().expect("first start creates admin");
    assert_eq!(path, dir.path().join("admin.token"));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
    }
    let token = std::fs::read_to_string(&path).unwrap();
    let principal = store.authenticate_bearer(token.trim(), at(T0 + 1)).unwrap();
    assert_eq!(principal.name, ADMIN_PRINCIPAL);
    assert_eq!(store.bootstrap_admin(dir.path(), at(T0 + 2)).unwrap(), None);
    assert_eq!(std::fs::read_to_string(&path).unwrap(), token, "a second start leaves the file alone");
}

#[test]
fn tokens_authenticate_by_bearer_and_basic_and_survive_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let (token_id, secret) = {
        let store = IdentityStore::open_in(dir.path()).unwrap();
        store.create_principal("bob", &["sales".into()], at(T0)).unwrap();
        store.create_token("bob", None, at(T0)).unwrap()
    };
    let store = IdentityStore::open_in(dir.path()).unwrap();
    let token = secret.expose();
    assert!(token.starts_with("weft_") && token.len() == 85, "{token_id}");
    assert_eq!(secret.token_id(), Some(token_id.as_str()));
    assert_eq!(store.authenticate_bearer(token, at(T0)).unwrap().domains, vec!["sales".to_string()]);
    assert_eq!(store.authenticate_basic("bob", token, at(T0)).unwrap().name, "bob");
    let via_header = parse_authorization_header(Some(&basic_header("bob", token))).unwrap();
    assert_eq!(store.authenticate(&via_header, at(T0)).unwrap().name, "bob");
    let via_bearer = parse_authorization_header(Some(format!("Bearer {token}").as_bytes())).unwrap();
    assert_eq!(store.authenticate(&via_bearer, at(T0)).unwrap().name, "bob");
}

#[test]
fn expired_revoked_malformed_and_foreign_tokens_are_refused() {
    let (_dir, store) = store();
    store.create_principal("bob", &[], at(T0)).unwrap();
    store.create_principal("carol", &[], at(T0)).unwrap();
    let (_, short) = store.create_token("bob", Some(Duration::from_secs(3600)), at(T0)).unwrap();
    let (revoked_id, revoked) = store.create_token("bob", None, at(T0)).unwrap();
    let (_, live) = store.create_token("bob", None, at(T0)).unwrap();
    store.revoke_token(&revoked_id, at(T0 + 10)).unwrap();

    let live_text = live.expose().to_string();
    let wrong_secret = format!("{}{}", &live_text[..live_text.len() - 1], if live_text.ends_with('0') { '1' } else { '0' });
    let unknown_id = format!("weft_{}{}", "f".repeat(16), &live_text[21..]);
    let cases: &[(&str, &str, &str)] = &[
        ("", short.expose(), codes::AUTH_EXPIRED_TOKEN),
        ("", revoked.expose(), codes::AUTH_REVOKED_TOKEN),
        ("", &wrong_secret, codes::AUTH_INVALID_TOKEN),
        ("", &unknown_id, codes::AUTH_INVALID_TOKEN),
        ("", "", codes::AUTH_MISSING_CREDENTIALS),
        ("", "weft_", codes::AUTH_INVALID_TOKEN),
        ("", "not-a-token", codes::AUTH_INVALID_TOKEN),
        ("", &live_text.to_uppercase(), codes::AUTH_INVALID_TOKEN),
        ("", &format!("{live_text}0"), codes::AUTH_INVALID_TOKEN),
        ("", &live_text[..live_text.len() - 1], codes::AUTH_INVALID_TOKEN),
        ("carol", &live_text, codes::AUTH_INVALID_TOKEN),
        ("nobody", &live_text, codes::AUTH_INVALID_TOKEN),
        ("carol", revoked.expose(), codes::AUTH_INVALID_TOKEN),
    ];
    let now = at(T0 + 2 * 3600);
    for (user, token, code) in cases {
        let result = if user.is_empty() { store.authenticate_bearer(token, now) } else { store.authenticate_basic(user, token, now) };
        let error = result.unwrap_err();
        assert_eq!(error.code(), *code, "{user:?} {token:?}");
        assert!(error.is_client_error());
        assert!(!error.to_string().contains(&live_text[21..]), "no secret in errors: {error}");
    }
    assert_eq!(store.authenticate_bearer(short.expose(), at(T0 + 3599)).unwrap().name, "bob");
    assert_eq!(store.authenticate_bearer(&live_text, now).unwrap().name, "bob");
}

#[test]
fn revocation_takes_effect_at_once() {
    let (_dir, store) = store();
    store.create_principal("bob", &[], at(T0)).unwrap();
    let (id, secret) = store.create_token("bob", None, at(T0)).unwrap();
    assert!(store.authenticate_bearer(secret.expose(), at(T0)).is_ok());
    let info = store.revoke_token(&id, at(T0 + 1)).unwrap();
    assert!(info.revoked());
    assert_eq!(store.authenticate_bearer(secret.expose(), at(T0 + 1)).unwrap_err(), AuthError::RevokedToken { token_id: id.clone() });
    assert_eq!(store.revoke_token("0000000000000000", at(T0)).unwrap_err().code(), codes::IDENTITY_TOKEN_NOT_FOUND);
}

#[test]
fn authorization_headers_parse_or_fail_with_stable_codes() {
    /// A header, and either the credential kind it parses to or the code it fails with.
    type Case<'a> = (Option<&'a [u8]>, Result<&'a str, &'a str>);
    let cases: &[Case] = &[
        (None, Err(codes::AUTH_MISSING_CREDENTIALS)),
        (Some(b""), Err(codes::AUTH_MISSING_CREDENTIALS)),
        (Some(b"Bearer "), Err(codes::AUTH_MALFORMED_CREDENTIALS)),
        (Some(b"Bearer"), Err(codes::AUTH_MALFORMED_CREDENTIALS)),
        (Some(b"Token abc"), Err(codes::AUTH_MALFORMED_CREDENTIALS)),
        (Some(b"Basic !!!!"), Err(codes::AUTH_MALFORMED_CREDENTIALS)),
        (Some(b"Basic Ym9i"), Err(codes::AUTH_MALFORMED_CREDENTIALS)), // "bob": no colon
        (Some(b"Basic Ym9iOg=="), Err(codes::AUTH_MISSING_CREDENTIALS)), // "bob:": no password
        (Some(b"Bearer \xff"), Err(codes::AUTH_MALFORMED_CREDENTIALS)),
        (Some(b"bearer weft_abc"), Ok("bearer")),
        (Some(b"Basic Ym9iOnNlY3JldA=="), Ok("basic")), // "bob:secret"
    ];
    for (header, expected) in cases {
        let parsed = parse_authorization_header(*header);
        match (expected, &parsed) {
            (Err(code), Err(error)) => assert_eq!(error.code(), *code, "{header:?}"),
            (Ok("bearer"), Ok(Credentials::Bearer(token))) => assert_eq!(token.expose(), "weft_abc"),
            (Ok("basic"), Ok(Credentials::Basic { user, password })) => assert_eq!((user.as_str(), password.expose()), ("bob", "secret")),
            _ => panic!("{header:?}: {parsed:?}"),
        }
    }
    let too_long = vec![b'a'; weft_governance::identity::AUTHORIZATION_HEADER_BYTES_MAX + 1];
    assert_eq!(parse_authorization_header(Some(&too_long)).unwrap_err().code(), codes::AUTH_MALFORMED_CREDENTIALS);
}

#[test]
fn token_secrets_never_appear_in_debug_output_or_listings() {
    let (_dir, store) = store();
    store.create_principal("bob", &[], at(T0)).unwrap();
    let (id, secret) = store.create_token("bob", Some(Duration::from_secs(86_400)), at(T0)).unwrap();
    let secret_part = &secret.expose()[21..];
    let credentials = Credentials::Basic { user: "bob".into(), password: secret.clone() };
    let shown = [
        format!("{secret:?}"),
        format!("{credentials:?}"),
        format!("{:?}", Credentials::Bearer(TokenSecret::new("not-even-a-token"))),
        format!("{:?}", store.list_tokens(None).unwrap()),
        serde_json::to_string(&store.list_tokens(Some("bob")).unwrap()).unwrap(),
        format!("{store:?}"),
    ];
    for text in &shown {
        assert!(!text.contains(secret_part), "{text}");
        assert!(!text.contains("not-even-a-token"), "{text}");
    }
    assert!(shown[0].contains(&id), "the id is shown: {}", shown[0]);
    let listed = store.list_tokens(Some("bob")).unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!((listed[0].id.as_str(), listed[0].expires_at_unix_ms), (id.as_str(), Some((T0 + 86_400) * 1000)));
}

#[test]
fn principals_have_unique_valid_names_and_tokens_need_a_principal() {
    let (_dir, store) = store();
    store.create_principal("svc.orders-writer@sales", &[], at(T0)).unwrap();
    let cases: &[(&str, &str)] = &[
        ("svc.orders-writer@sales", codes::IDENTITY_PRINCIPAL_EXISTS),
        ("", codes::IDENTITY_INVALID_NAME),
        ("has space", codes::IDENTITY_INVALID_NAME),
        ("quote\"", codes::IDENTITY_INVALID_NAME),
    ];
    for (name, code) in cases {
        assert_eq!(store.create_principal(name, &[], at(T0)).unwrap_err().code(), *code, "{name:?}");
    }
    assert_eq!(store.create_principal(&"a".repeat(129), &[], at(T0)).unwrap_err().code(), codes::IDENTITY_INVALID_NAME);
    assert_eq!(store.create_token("ghost", None, at(T0)).unwrap_err(), IdentityError::PrincipalNotFound("ghost".into()));
    assert_eq!(
        store.create_token("svc.orders-writer@sales", Some(Duration::ZERO), at(T0)).unwrap_err().code(),
        codes::IDENTITY_INVALID_EXPIRY
    );
    let names: Vec<String> = store.list_principals().unwrap().into_iter().map(|principal| principal.name).collect();
    assert_eq!(names, vec!["svc.orders-writer@sales".to_string()]);
}

#[test]
fn live_tokens_per_principal_are_bounded_but_revoked_ones_do_not_count() {
    let (_dir, store) = store();
    store.create_principal("bob", &[], at(T0)).unwrap();
    let mut ids = Vec::new();
    for _ in 0..weft_governance::identity::TOKENS_PER_PRINCIPAL_MAX {
        ids.push(store.create_token("bob", None, at(T0)).unwrap().0);
    }
    assert_eq!(store.create_token("bob", None, at(T0)).unwrap_err().code(), codes::IDENTITY_LIMIT_REACHED);
    store.revoke_token(&ids[0], at(T0)).unwrap();
    assert!(store.create_token("bob", None, at(T0)).is_ok());
}
