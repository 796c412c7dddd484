//! Audit: the hash chain detects flipped bytes, rewritten, removed and reordered entries, and a
//! truncated tail (through the stored head); search filters; no secrets in entries.

use std::time::{Duration, UNIX_EPOCH};

use weft_governance::audit::{
    AUDIT_ENTRY_BYTES_MAX, AuditChain, AuditDecision, AuditEntry, AuditFilter, AuditHead, AuditRecord, GENESIS_HASH, parse_entry,
    read_head, verify, write_head,
};

const T0_MS: u64 = 1_800_000_000_000;

fn record(n: u64) -> AuditRecord {
    let decision = [AuditDecision::Allow, AuditDecision::Deny, AuditDecision::AuthFailure][(n % 3) as usize];
    AuditRecord {
        time: UNIX_EPOCH + Duration::from_millis(T0_MS + n * 1000),
        principal: (decision != AuditDecision::AuthFailure).then(|| ["alice", "bob"][(n % 2) as usize].to_string()),
        action: ["produce", "consume", "apply", "token.create"][(n % 4) as usize].to_string(),
        resource: format!("Weft::Stream::\"orders-{}\"", n % 5),
        decision,
        code: (decision == AuditDecision::Deny).then(|| "authz.denied".to_string()),
        source: Some(format!("127.0.0.1:{}", 40_000 + n)),
        detail: None,
    }
}

/// `n` entries at offsets 100, 101, ... (offsets of the audit stream need not start at 0), and the head.
fn log(n: u64) -> (Vec<(u64, Vec<u8>)>, AuditHead) {
    let mut chain = AuditChain::new();
    let entries = (0..n).map(|seq| (100 + seq, chain.next_entry(&record(seq)).bytes)).collect();
    (entries, chain.head().unwrap())
}

fn broken_at(entries: &[(u64, Vec<u8>)], head: Option<&AuditHead>) -> Option<u64> {
    let report = verify(entries.iter().map(|(offset, bytes)| (*offset, bytes.as_slice())), head);
    assert_eq!(report.ok, report.first_broken.is_none(), "{report:?}");
    report.first_broken.map(|(offset, _)| offset)
}

/// Rewrites an entry and recomputes its own hash, as someone who knows the format would.
fn rewrite(bytes: &[u8], change: impl FnOnce(&mut AuditEntry)) -> Vec<u8> {
    let mut entry = parse_entry(bytes).unwrap();
    change(&mut entry);
    entry.hash = None;
    let hash = weft_sha256_hex(&serde_json::to_vec(&entry).unwrap());
    entry.hash = Some(hash);
    serde_json::to_vec(&entry).unwrap()
}

fn weft_sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(bytes).iter().map(|byte| format!("{byte:02x}")).collect()
}

#[test]
fn an_intact_chain_verifies_with_and_without_its_head() {
    let (entries, head) = log(20);
    let report = verify(entries.iter().map(|(offset, bytes)| (*offset, bytes)), Some(&head));
    assert!(report.ok, "{report:?}");
    assert_eq!((report.n_entries, report.last.as_ref(), report.n_after_head), (20, Some(&head), 0));
    assert!(verify(Vec::<(u64, Vec<u8>)>::new(), None).ok, "an empty log without a head is fine");
    let first = parse_entry(&entries[0].1).unwrap();
    assert_eq!((first.seq, first.prev_hash.as_str()), (0, GENESIS_HASH));
}

#[test]
fn the_entry_format_is_stable() {
    let mut chain = AuditChain::new();
    let entry = chain.next_entry(&record(1));
    let text = String::from_utf8(entry.bytes.clone()).unwrap();
    let expected_prefix = r#"{"seq":0,"time":"2027-01-15T08:00:01Z","principal":"bob","action":"consume","resource":"Weft::Stream::\"orders-1\"","decision":"deny","code":"authz.denied","source":"127.0.0.1:40001","detail":null,"prev_hash":"0000000000000000000000000000000000000000000000000000000000000000","hash":""#;
    assert!(text.starts_with(expected_prefix), "{text}");
    let without_hash = &text[..text.find(r#","hash":"#).unwrap()];
    assert_eq!(weft_sha256_hex(format!("{without_hash}}}").as_bytes()), entry.hash, "hash covers the entry without its hash member");
}

#[test]
fn flipping_any_byte_of_any_entry_is_detected() {
    let (entries, head) = log(6);
    for entry_idx in 0..entries.len() {
        for byte_idx in 0..entries[entry_idx].1.len() {
            for flip in [0x01u8, 0x20, 0x80] {
                let mut tampered = entries.clone();
                tampered[entry_idx].1[byte_idx] ^= flip;
                assert_eq!(broken_at(&tampered, Some(&head)), Some(tampered[entry_idx].0), "entry {entry_idx} byte {byte_idx} ^ {flip:#x}");
            }
        }
    }
}

#[test]
fn a_rewritten_entry_with_a_valid_own_hash_is_detected() {
    let (entries, head) = log(10);
    let mut tampered = entries.clone();
    tampered[4].1 = rewrite(&tampered[4].1, |entry| entry.decision = AuditDecision::Allow);
    assert_eq!(broken_at(&tampered, Some(&head)), Some(entries[5].0), "the next entry's prev_hash breaks");

    // Rewriting the last entry leaves no next entry: the stored head catches it.
    let mut tampered = entries.clone();
    tampered[9].1 = rewrite(&tampered[9].1, |entry| entry.principal = Some("mallory".into()));
    assert!(broken_at(&tampered, Some(&head)).is_some());
    assert_eq!(broken_at(&tampered, None), None, "without the head, a rewritten last entry is undetectable");

    // Unknown members, whitespace or reordered members are not the canonical form.
    let mut tampered = entries.clone();
    let text = String::from_utf8(tampered[2].1.clone()).unwrap().replacen(",\"time\"", ", \"time\"", 1);
    tampered[2].1 = text.into_bytes();
    assert_eq!(broken_at(&tampered, Some(&head)), Some(entries[2].0));
}

#[test]
fn a_removed_or_reordered_entry_is_detected() {
    let (entries, head) = log(10);
    for removed in 0..entries.len() - 1 {
        let mut tampered = entries.clone();
        tampered.remove(removed);
        assert_eq!(broken_at(&tampered, Some(&head)), Some(entries[removed + 1].0), "removed {removed}");
    }
    // Removing entry 3 and renumbering every later one (with valid own hashes) still breaks prev_hash.
    let mut tampered = entries.clone();
    tampered.remove(3);
    for later in tampered.iter_mut().skip(3) {
        later.1 = rewrite(&later.1, |entry| entry.seq -= 1);
    }
    assert_eq!(broken_at(&tampered, Some(&head)), Some(entries[4].0));

    let mut swapped = entries.clone();
    swapped.swap(2, 3);
    assert_eq!(broken_at(&swapped, Some(&head)), Some(entries[3].0));
}

#[test]
fn a_truncated_tail_is_detected_through_the_stored_head() {
    let (entries, head) = log(10);
    for n_kept in 0..entries.len() {
        let truncated = &entries[..n_kept];
        let expected_offset = if n_kept == 0 { 0 } else { entries[n_kept - 1].0 + 1 };
        let report = verify(truncated.iter().map(|(offset, bytes)| (*offset, bytes)), Some(&head));
        assert!(!report.ok, "kept {n_kept}");
        let (offset, reason) = report.first_broken.unwrap();
        assert_eq!(offset, expected_offset, "kept {n_kept}");
        assert!(reason.contains("truncated"), "{reason}");
        assert_eq!(broken_at(truncated, None), None, "without the head, truncation is invisible");
    }
}

#[test]
fn entries_after_the_head_are_the_crash_window_not_a_break() {
    let (entries, _) = log(10);
    let mut chain = AuditChain::new();
    for _ in 0..8 {
        chain.next_entry(&record(0));
    }
    let stale_head = AuditHead { seq: 7, hash: parse_entry(&entries[7].1).unwrap().hash.unwrap() };
    let report = verify(entries.iter().map(|(offset, bytes)| (*offset, bytes)), Some(&stale_head));
    assert!(report.ok, "{report:?}");
    assert_eq!(report.n_after_head, 2);
    let forged_head = AuditHead { seq: 7, hash: GENESIS_HASH.to_string() };
    assert!(!verify(entries.iter().map(|(offset, bytes)| (*offset, bytes)), Some(&forged_head)).ok);
}

#[test]
fn the_chain_resumes_after_a_restart_and_prepare_does_not_advance_it() {
    let dir = tempfile::tempdir().unwrap();
    let (mut entries, head) = log(5);
    write_head(dir.path(), &head).unwrap();
    assert_eq!(read_head(dir.path()).unwrap(), Some(head.clone()));

    let mut chain = AuditChain::resume(Some(&entries.last().unwrap().1)).unwrap();
    assert_eq!(chain.head(), Some(head));
    let prepared = chain.prepare(&record(5));
    assert_eq!(chain.prepare(&record(5)), prepared, "prepare is pure");
    chain.commit(&prepared);
    entries.push((105, prepared.bytes.clone()));
    write_head(dir.path(), &prepared.head()).unwrap();
    let stored = read_head(dir.path()).unwrap().unwrap();
    assert!(verify(entries.iter().map(|(offset, bytes)| (*offset, bytes)), Some(&stored)).ok);
    assert_eq!(read_head(tempfile::tempdir().unwrap().path()).unwrap(), None);
    assert!(AuditChain::resume(Some(b"{not an entry")).is_err());
}

#[test]
fn search_filters_by_principal_action_resource_decision_and_time() {
    let (entries, _) = log(20);
    let parsed: Vec<AuditEntry> = entries.iter().map(|(_, bytes)| parse_entry(bytes).unwrap()).collect();
    let at = |n: u64| UNIX_EPOCH + Duration::from_millis(T0_MS + n * 1000);
    let seqs = |filter: AuditFilter| -> Vec<u64> { parsed.iter().filter(|entry| filter.matches(entry)).map(|entry| entry.seq).collect() };
    let cases: Vec<(AuditFilter, Vec<u64>)> = vec![
        (AuditFilter::default(), (0..20).collect()),
        (AuditFilter { principal: Some("alice".into()), ..Default::default() }, vec![0, 4, 6, 10, 12, 16, 18]),
        (AuditFilter { action: Some("token.*".into()), ..Default::default() }, vec![3, 7, 11, 15, 19]),
        (AuditFilter { resource: Some("Weft::Stream::\"orders-3\"".into()), ..Default::default() }, vec![3, 8, 13, 18]),
        (
            AuditFilter { resource: Some("Weft::Stream::*".into()), decision: Some(AuditDecision::AuthFailure), ..Default::default() },
            vec![2, 5, 8, 11, 14, 17],
        ),
        (AuditFilter { since: Some(at(5)), until: Some(at(8)), ..Default::default() }, vec![5, 6, 7]),
        (AuditFilter { principal: Some("bob".into()), since: Some(at(10)), ..Default::default() }, vec![13, 15, 19]),
    ];
    for (filter, expected) in cases {
        assert_eq!(seqs(filter.clone()), expected, "{filter:?}");
    }
    assert_eq!(parsed[3].system_time(), Some(at(3)));
}

#[test]
fn fields_are_bounded_and_cannot_forge_lines_and_secrets_stay_out() {
    let secret = "weft_0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
    let error = weft_governance::identity::AuthError::InvalidToken { token_id: Some("0123456789abcdef".into()) };
    let mut chain = AuditChain::new();
    let entry = chain.next_entry(&AuditRecord {
        time: UNIX_EPOCH,
        principal: None,
        action: "authenticate".into(),
        resource: "x".repeat(10_000) + "\n{\"forged\":true}",
        decision: AuditDecision::AuthFailure,
        code: Some(error.code().into()),
        source: Some("\u{1b}[31m10.0.0.1:1\r\n".into()),
        detail: Some(format!("{error}; token id {}", error.token_id().unwrap())),
    });
    let text = String::from_utf8(entry.bytes.clone()).unwrap();
    assert!(entry.bytes.len() <= AUDIT_ENTRY_BYTES_MAX);
    assert!(!text.contains('\n') && !text.contains("\\n") && !text.contains("\\u001b"), "{text}");
    assert!(!text.contains(&secret[21..]), "{text}");
    assert!(text.contains("\"code\":\"auth.invalid_token\""), "{text}");
    assert!(verify([(0u64, entry.bytes)], None).ok);
}
