//! syntax: interop fixtures, round-trip properties, TID clock, no-panic fuzzing, serde.

use berth::syntax::{
    AtIdentifier, AtUri, CidString, Datetime, Did, Handle, INVALID_HANDLE, Language, Nsid,
    RecordKey, SyntaxError, Tid, TidClock, Uri,
};
use proptest::prelude::*;
use std::collections::HashSet;
use std::fmt::Debug;
use std::str::FromStr;
use std::sync::{Arc, OnceLock};

// ---------------------------------------------------------------------------------------------
// Fixture loading
// ---------------------------------------------------------------------------------------------

const FIXTURE_DIR: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/interop-tests/syntax"
);

/// The cases of one fixture file: every line that is neither empty nor a `#` comment, untrimmed.
/// Exception: `#extra` in `recordkey_syntax_invalid.txt` is an invalid key, not a comment.
fn cases(file: &str) -> Vec<String> {
    let path = format!("{FIXTURE_DIR}/{file}");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let lines: Vec<String> = text
        .split('\n')
        .filter(|l| !l.is_empty())
        .filter(|l| {
            !l.starts_with('#') || (file == "recordkey_syntax_invalid.txt" && *l == "#extra")
        })
        .map(str::to_owned)
        .collect();
    assert!(!lines.is_empty(), "{file}: no cases read");
    lines
}

/// Every case parses, round-trips through `Display` unchanged, and agrees with `TryFrom<String>`.
fn assert_valid<T>(file: &str, extra: &[&str]) -> usize
where
    T: FromStr<Err = SyntaxError> + TryFrom<String, Error = SyntaxError> + ToString + Debug + Eq,
{
    let mut all = cases(file);
    all.extend(extra.iter().map(|s| s.to_string()));
    for case in &all {
        let v: T = case
            .parse()
            .unwrap_or_else(|e| panic!("{file}: expected valid {case:?}: {e}"));
        assert_eq!(&v.to_string(), case, "{file}: display changed the text");
        assert_eq!(T::try_from(case.clone()).as_ref(), Ok(&v));
    }
    all.len()
}

/// Every case is rejected, by both `FromStr` and `TryFrom<String>`.
fn assert_invalid<T>(file: &str, extra: &[&str]) -> usize
where
    T: FromStr<Err = SyntaxError> + TryFrom<String, Error = SyntaxError> + Debug,
{
    let mut all = cases(file);
    all.extend(extra.iter().map(|s| s.to_string()));
    for case in &all {
        if let Ok(v) = case.parse::<T>() {
            panic!("{file}: expected invalid {case:?}, got {v:?}");
        }
        assert!(T::try_from(case.clone()).is_err(), "{file}: {case:?}");
    }
    all.len()
}

/// Cases per file, counted independently (duplicates included) so a loader that silently drops
/// lines fails. Matches the fixture INDEX except `recordkey_syntax_invalid.txt`: 11 + `#extra`.
#[test]
fn fixture_case_counts() {
    let expected = [
        ("atidentifier_syntax_invalid.txt", 22),
        ("atidentifier_syntax_valid.txt", 11),
        ("aturi_syntax_invalid.txt", 72),
        ("aturi_syntax_valid.txt", 23),
        ("cid_syntax_invalid.txt", 10),
        ("cid_syntax_valid.txt", 8),
        ("datetime_parse_invalid.txt", 7),
        ("datetime_syntax_invalid.txt", 45),
        ("datetime_syntax_valid.txt", 35),
        ("did_syntax_invalid.txt", 18),
        ("did_syntax_valid.txt", 24),
        ("handle_syntax_invalid.txt", 48),
        ("handle_syntax_valid.txt", 71),
        ("language_parse_invalid.txt", 4),
        ("language_syntax_invalid.txt", 7),
        ("language_syntax_valid.txt", 18),
        ("nsid_syntax_invalid.txt", 27),
        ("nsid_syntax_valid.txt", 25),
        ("recordkey_syntax_invalid.txt", 12),
        ("recordkey_syntax_valid.txt", 16),
        ("tid_syntax_invalid.txt", 9),
        ("tid_syntax_valid.txt", 4),
        ("uri_syntax_invalid.txt", 12),
        ("uri_syntax_valid.txt", 9),
    ];
    let mut files: Vec<String> = std::fs::read_dir(FIXTURE_DIR)
        .expect("fixture dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".txt"))
        .collect();
    files.sort();
    let listed: Vec<&str> = expected.iter().map(|(f, _)| *f).collect();
    assert_eq!(files, listed, "every fixture file is covered");
    for (file, n) in expected {
        assert_eq!(cases(file).len(), n, "{file}");
    }
    let rkey = cases("recordkey_syntax_invalid.txt");
    assert!(rkey.iter().any(|l| l == "#extra"));
}

#[test]
fn fixtures_handle() {
    assert_valid::<Handle>("handle_syntax_valid.txt", &[]);
    assert_invalid::<Handle>("handle_syntax_invalid.txt", &[]);
}

#[test]
fn fixtures_did() {
    assert_valid::<Did>("did_syntax_valid.txt", &[]);
    assert_invalid::<Did>("did_syntax_invalid.txt", &[]);
}

#[test]
fn fixtures_nsid() {
    assert_valid::<Nsid>("nsid_syntax_valid.txt", &[]);
    assert_invalid::<Nsid>("nsid_syntax_invalid.txt", &[]);
}

#[test]
fn fixtures_aturi() {
    assert_valid::<AtUri>("aturi_syntax_valid.txt", &[]);
    assert_invalid::<AtUri>("aturi_syntax_invalid.txt", &[]);
}

#[test]
fn fixtures_atidentifier() {
    assert_valid::<AtIdentifier>("atidentifier_syntax_valid.txt", &[]);
    assert_invalid::<AtIdentifier>("atidentifier_syntax_invalid.txt", &[]);
}

#[test]
fn fixtures_recordkey() {
    assert_valid::<RecordKey>("recordkey_syntax_valid.txt", &[]);
    assert_invalid::<RecordKey>("recordkey_syntax_invalid.txt", &[]);
}

#[test]
fn fixtures_tid() {
    // The monorepo copy's extra cases (INDEX drift table): test the union.
    assert_valid::<Tid>(
        "tid_syntax_valid.txt",
        &["a222222222222", "j222222222222", "azzzzzzzzzzzz"],
    );
    assert_invalid::<Tid>("tid_syntax_invalid.txt", &[]);
}

#[test]
fn fixtures_datetime() {
    assert_valid::<Datetime>("datetime_syntax_valid.txt", &[]);
    assert_invalid::<Datetime>("datetime_syntax_invalid.txt", &[]);
    for case in cases("datetime_syntax_invalid.txt") {
        assert!(Datetime::check_syntax(&case).is_err(), "{case:?}");
    }
    // Parse-invalid: passes the syntax step, fails the semantic one. This includes
    // `0000-01-01T00:00:00+01:00`, which the monorepo copy lists as syntax-invalid instead.
    assert_invalid::<Datetime>("datetime_parse_invalid.txt", &[]);
    for case in cases("datetime_parse_invalid.txt") {
        assert!(Datetime::check_syntax(&case).is_ok(), "{case:?}");
        assert!(!Datetime::is_valid(&case), "{case:?}");
    }
}

#[test]
fn fixtures_language() {
    assert_valid::<Language>("language_syntax_valid.txt", &[]);
    for case in cases("language_syntax_valid.txt") {
        assert!(Language::is_well_formed(&case), "{case:?}");
    }
    // `de-419-DE` is commented out upstream and invalid in the monorepo copy; it is not
    // well-formed RFC 5646, so reject it.
    assert_invalid::<Language>("language_syntax_invalid.txt", &["de-419-DE"]);
    assert_invalid::<Language>("language_parse_invalid.txt", &[]);
    for case in cases("language_parse_invalid.txt") {
        assert!(Language::is_well_formed(&case), "{case:?}");
    }
    // The monorepo moved these to parse-invalid: well-formed, but rejected by strict parsing.
    for case in ["JA", "jaja"] {
        assert!(Language::is_well_formed(case), "{case:?}");
        assert!(!Language::is_valid(case), "{case:?}");
    }
    assert!(!Language::is_well_formed("de-419-DE"));
}

#[test]
fn fixtures_cid() {
    assert_valid::<CidString>("cid_syntax_valid.txt", &[]);
    assert_invalid::<CidString>("cid_syntax_invalid.txt", &[]);
}

#[test]
fn fixtures_uri() {
    assert_valid::<Uri>("uri_syntax_valid.txt", &[]);
    assert_invalid::<Uri>("uri_syntax_invalid.txt", &[]);
}

// ---------------------------------------------------------------------------------------------
// Unit behaviour
// ---------------------------------------------------------------------------------------------

#[test]
fn error_messages_name_the_rule_and_truncate_input() {
    let e = "foo..bar".parse::<Handle>().unwrap_err();
    assert_eq!(e.to_string(), r#"invalid handle "foo..bar": empty label"#);
    assert_eq!(e.kind, "handle");

    let e = "jo@hn.test".parse::<Handle>().unwrap_err();
    assert_eq!(
        e.to_string(),
        r#"invalid handle "jo@hn.test": invalid character '@'"#
    );

    let long = "x".repeat(10_000);
    let e = long.parse::<AtUri>().unwrap_err();
    assert!(e.to_string().len() < 200, "{e}");
    assert_eq!(e.input.chars().count(), 65); // 64 characters and an ellipsis

    // Multi-byte input is cut on a character boundary, control characters are escaped.
    let e = "é".repeat(100).parse::<Nsid>().unwrap_err();
    assert!(e.input.starts_with("éé"));
    let e = "a\nb.test".parse::<Handle>().unwrap_err();
    assert!(e.to_string().contains(r"a\nb.test"), "{e}");

    let e = "1985-13-12T23:20:50.123Z".parse::<Datetime>().unwrap_err();
    assert!(e.reason.contains("month"), "{e}");
    let e = "en-a-foo-a-bar".parse::<Language>().unwrap_err();
    assert!(e.reason.contains("repeated"), "{e}");
    let e = "at://did:plc:asdf123/".parse::<AtUri>().unwrap_err();
    assert!(e.reason.contains("trailing slash"), "{e}");
}

#[test]
fn did_accessors_and_blessed_methods() {
    let d: Did = "did:plc:ewvi7nxzyoun6zhxrhs64oiz".parse().unwrap();
    assert_eq!(d.method(), "plc");
    assert_eq!(d.identifier(), "ewvi7nxzyoun6zhxrhs64oiz");
    assert!(d.is_plc() && !d.is_web());
    assert!(d.check_blessed().is_ok());

    let d: Did = "did:method:val:two".parse().unwrap();
    assert_eq!((d.method(), d.identifier()), ("method", "val:two"));
    assert!(d.check_blessed().is_err());

    for ok in [
        "did:web:example.com",
        "did:web:user.example.com",
        "did:web:localhost",
        "did:web:localhost%3A2583",
        "did:plc:7iza6de2dwap2sbkpav7c6c6",
    ] {
        let d: Did = ok.parse().unwrap();
        assert!(d.check_blessed().is_ok(), "{ok}");
    }
    for bad in [
        "did:plc:ewvi7nxzyoun6zhxrhs64oi",   // 23 chars
        "did:plc:ewvi7nxzyoun6zhxrhs64oizz", // 25 chars
        "did:plc:ewvi7nxzyoun6zhxrhs64oi1",  // '1' is not base32
        "did:plc:EWVI7NXZYOUN6ZHXRHS64OIZ",
        "did:web:Example.com",
        "did:web:example.com:path",
        "did:web:example.com%3A",
        "did:web:example.com%3A99999",
        "did:web:example",
        "did:web:127.0.0.1",
        "did:key:zQ3shZc2QzApp2oymGvQbzP8eKheVshBHbU4ZYjeXqwSKEn6N",
    ] {
        let d: Did = bad.parse().unwrap();
        let e = d.check_blessed().unwrap_err();
        assert_eq!(e.kind, "did", "{bad}");
    }
}

#[test]
fn handle_helpers() {
    let h: Handle = "Alice.Example.COM".parse().unwrap();
    assert_eq!(h.as_str(), "Alice.Example.COM");
    assert!(!h.is_normalized());
    assert_eq!(h.normalize().as_str(), "alice.example.com");
    assert!(h.normalize().is_normalized());
    assert_eq!(h.tld(), "COM");
    assert!(!h.has_disallowed_tld());

    for tld in [
        "alt",
        "arpa",
        "example",
        "internal",
        "invalid",
        "local",
        "localhost",
        "onion",
    ] {
        let h: Handle = format!("name.{tld}").parse().unwrap();
        assert!(h.has_disallowed_tld(), "{tld}");
        let h: Handle = format!("name.{}", tld.to_uppercase()).parse().unwrap();
        assert!(h.has_disallowed_tld(), "{tld} upper");
    }
    assert!(!"name.test".parse::<Handle>().unwrap().has_disallowed_tld());
    assert!(
        !"name.localhosts"
            .parse::<Handle>()
            .unwrap()
            .has_disallowed_tld()
    );

    assert_eq!(INVALID_HANDLE, "handle.invalid");
    assert_eq!(Handle::invalid().as_str(), INVALID_HANDLE);
    assert!(Handle::invalid().is_invalid_handle());
    assert!(Handle::invalid().has_disallowed_tld());
    assert!(
        "HANDLE.INVALID"
            .parse::<Handle>()
            .unwrap()
            .is_invalid_handle()
    );
}

#[test]
fn nsid_parts() {
    let n: Nsid = "com.atproto.repo.createRecord".parse().unwrap();
    assert_eq!(n.authority(), "repo.atproto.com");
    assert_eq!(n.domain_prefix(), "com.atproto.repo");
    assert_eq!(n.name(), "createRecord");
    let n: Nsid = "COM.Example.fooBar".parse().unwrap();
    assert_eq!(n.authority(), "example.com");
    assert_eq!(n.normalize().as_str(), "com.example.fooBar");
}

#[test]
fn at_identifier_variants() {
    let a: AtIdentifier = "did:plc:ewvi7nxzyoun6zhxrhs64oiz".parse().unwrap();
    assert!(a.is_did());
    assert_eq!(a.as_did().map(Did::method), Some("plc"));
    assert!(a.as_handle().is_none());
    let a: AtIdentifier = "alice.test".parse().unwrap();
    assert_eq!(a.as_handle().map(Handle::as_str), Some("alice.test"));
    assert_eq!(a.as_str(), "alice.test");
    let e = "did:thing.test".parse::<AtIdentifier>().unwrap_err();
    assert_eq!(e.kind, "at-identifier");
}

#[test]
fn aturi_parts_and_constructors() {
    let u: AtUri = "at://did:plc:ewvi7nxzyoun6zhxrhs64oiz/app.bsky.feed.post/3jzfcijpj2z2a"
        .parse()
        .unwrap();
    assert_eq!(u.authority().as_str(), "did:plc:ewvi7nxzyoun6zhxrhs64oiz");
    assert!(u.authority().is_did());
    assert_eq!(u.collection().map(Nsid::as_str), Some("app.bsky.feed.post"));
    assert_eq!(u.rkey().map(RecordKey::as_str), Some("3jzfcijpj2z2a"));

    let built = AtUri::for_record(
        u.authority().clone(),
        u.collection().unwrap().clone(),
        u.rkey().unwrap().clone(),
    );
    assert_eq!(built, u);
    let parts = AtUri::from_parts(
        u.authority().clone(),
        u.collection().cloned(),
        u.rkey().cloned(),
    )
    .unwrap();
    assert_eq!(parts, u);

    let repo = AtUri::for_repo("alice.test".parse().unwrap());
    assert_eq!(repo.as_str(), "at://alice.test");
    assert!(repo.collection().is_none() && repo.rkey().is_none());
    let coll = AtUri::for_collection(
        "alice.test".parse().unwrap(),
        "app.bsky.feed.post".parse().unwrap(),
    );
    assert_eq!(coll.as_str(), "at://alice.test/app.bsky.feed.post");
    assert!(coll.rkey().is_none());

    let e = AtUri::from_parts(
        "alice.test".parse().unwrap(),
        None,
        Some("self".parse().unwrap()),
    )
    .unwrap_err();
    assert_eq!(e.kind, "at-uri");

    // Largest authority + collection + rkey is still under the 8 KiB limit.
    let did: Did = format!("did:m:{}", "v".repeat(2048 - 6)).parse().unwrap();
    let nsid: Nsid = format!("a.b.{}", "c".repeat(63)).parse().unwrap();
    let rkey: RecordKey = "k".repeat(512).parse().unwrap();
    let big = AtUri::for_record(did.into(), nsid, rkey);
    assert_eq!(big.as_str().parse::<AtUri>().as_ref(), Ok(&big));
}

#[test]
fn tid_encoding() {
    assert_eq!(Tid::ZERO.as_str(), "2222222222222");
    assert_eq!(Tid::ZERO.as_u64(), 0);
    assert_eq!(Tid::from_u64(u64::MAX).as_str(), "jzzzzzzzzzzzz");
    assert_eq!(Tid::from_u64(u64::MAX >> 1).as_str(), "bzzzzzzzzzzzz");

    let t: Tid = "3jzfcijpj2z2a".parse().unwrap();
    assert_eq!(t.as_u64(), 1_728_652_679_052_295_174);
    assert_eq!(t.timestamp_micros(), 1_688_137_381_887_007);
    assert_eq!(t.clock_id(), 6);
    assert_eq!(
        t.timestamp().unwrap().to_rfc3339(),
        "2023-06-30T15:03:01.887007+00:00"
    );
    assert_eq!(Tid::new(1_688_137_381_887_007, 6).unwrap(), t);

    assert!(Tid::new(1 << 53, 0).is_err());
    assert!(Tid::new(0, 1024).is_err());
    let max = Tid::new((1 << 53) - 1, 1023).unwrap();
    assert_eq!(max.as_u64(), u64::MAX >> 1);
    assert_eq!(RecordKey::from(t).as_str(), "3jzfcijpj2z2a");
    assert_eq!(format!("{t:?}"), r#"Tid("3jzfcijpj2z2a")"#);
}

#[test]
fn tid_clock_monotonic_single_thread() {
    let clock = TidClock::new();
    assert!(clock.clock_id() < 1024);
    let mut last = clock.next();
    for _ in 0..100_000 {
        let t = clock.next();
        assert!(t > last, "{t:?} <= {last:?}");
        assert!(t.as_str() > last.as_str());
        assert_eq!(t.clock_id(), clock.clock_id());
        last = t;
    }
    // Close to the wall clock (within a minute; the loop above runs ahead by at most 100k us).
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_micros() as u64;
    assert!(last.timestamp_micros().abs_diff(now) < 60_000_000);
}

#[test]
fn tid_clock_survives_backwards_and_repeated_time() {
    let clock = TidClock::with_clock_id(0xffff); // masked to 10 bits
    assert_eq!(clock.clock_id(), 1023);
    let a = clock.next_at(1_000_000);
    let b = clock.next_at(1_000_000); // same microsecond
    let c = clock.next_at(500_000); // clock went backwards
    let d = clock.next_at(2_000_000); // clock caught up
    assert!(a < b && b < c && c < d, "{a:?} {b:?} {c:?} {d:?}");
    assert_eq!(a.timestamp_micros(), 1_000_000);
    assert_eq!(b.timestamp_micros(), 1_000_001);
    assert_eq!(c.timestamp_micros(), 1_000_002);
    assert_eq!(d.timestamp_micros(), 2_000_000);

    // `observe` bumps the clock past a stored value, even one from another clock id.
    clock.observe(Tid::new(5_000_000, 7).unwrap());
    let e = clock.next_at(3_000_000);
    assert!(e > Tid::new(5_000_000, 7).unwrap());
    assert_eq!(e.timestamp_micros(), 5_000_001);
    clock.observe(Tid::ZERO); // never moves backwards
    assert!(clock.next_at(0) > e);
}

#[test]
fn tid_clock_monotonic_across_threads() {
    let clock = Arc::new(TidClock::new());
    let handles: Vec<_> = (0..4)
        .map(|_| {
            let clock = Arc::clone(&clock);
            std::thread::spawn(move || {
                let mut out = Vec::with_capacity(20_000);
                for _ in 0..20_000 {
                    out.push(clock.next());
                }
                out
            })
        })
        .collect();
    let mut all = HashSet::new();
    for h in handles {
        let seq = h.join().unwrap();
        assert!(seq.windows(2).all(|w| w[0] < w[1]), "per-thread order");
        for t in seq {
            assert!(all.insert(t), "duplicate {t:?}");
        }
    }
    assert_eq!(all.len(), 80_000);
}

#[test]
fn tid_now_global_clock_across_threads() {
    let handles: Vec<_> = (0..4)
        .map(|_| std::thread::spawn(|| (0..10_000).map(|_| Tid::now()).collect::<Vec<_>>()))
        .collect();
    let mut all = HashSet::new();
    for h in handles {
        let seq = h.join().unwrap();
        assert!(seq.windows(2).all(|w| w[0] < w[1]));
        all.extend(seq);
    }
    assert_eq!(all.len(), 40_000);
    let a = Tid::now();
    assert!(Tid::now() > a);
}

#[test]
fn datetime_now_and_chrono() {
    let now = Datetime::now();
    let s = now.as_str();
    assert_eq!(s.len(), 24, "{s}");
    assert!(s.ends_with('Z') && s.as_bytes()[19] == b'.', "{s}");
    assert_eq!(s.parse::<Datetime>().as_ref(), Ok(&now));
    let age = chrono::Utc::now() - now.to_utc();
    assert!(age.num_seconds().abs() < 60);

    let d: Datetime = "1985-04-12T23:20:50.123-07:00".parse().unwrap();
    assert_eq!(d.to_utc().to_rfc3339(), "1985-04-13T06:20:50.123+00:00");
    assert_eq!(d.to_chrono().offset().local_minus_utc(), -7 * 3600);
    assert_eq!(d.timestamp_millis(), 482_221_250_123);
    assert_eq!(d.timestamp_micros(), 482_221_250_123_000);

    // Fractions beyond nanoseconds are kept in the text, truncated in the instant.
    let d: Datetime = "1985-04-12T23:20:50.12345678912345Z".parse().unwrap();
    assert_eq!(d.as_str(), "1985-04-12T23:20:50.12345678912345Z");
    assert_eq!(d.to_chrono().timestamp_subsec_nanos(), 123_456_789);

    // Chronological order, even across offsets; string equality otherwise.
    let a: Datetime = "1985-04-12T23:20:50.123-07:00".parse().unwrap();
    let b: Datetime = "1985-04-13T01:00:00Z".parse().unwrap();
    assert!(b < a);
    let c: Datetime = "1985-04-13T06:20:50.123Z".parse().unwrap();
    assert_ne!(a, c);
    assert_eq!(a.to_utc(), c.to_utc());
    assert_ne!(a.cmp(&c), std::cmp::Ordering::Equal);

    let formatted = Datetime::from_utc(a.to_utc());
    assert_eq!(formatted.as_str(), "1985-04-13T06:20:50.123Z");
    assert_eq!(Datetime::from(c.to_utc()), c);

    for ok in [
        "2024-02-29T00:00:00Z",
        "2000-02-29T12:00:00Z",
        "0000-01-01T00:00:00-01:00",
        "9999-12-31T23:59:59-23:59",
    ] {
        assert!(Datetime::is_valid(ok), "{ok}");
    }
    for bad in [
        "2023-02-29T00:00:00Z",
        "1900-02-29T00:00:00Z",
        "1985-04-31T00:00:00Z",
        "1985-04-12T24:00:00Z",
        "1985-04-12T23:59:60Z",
        "1985-04-12T23:59:59+24:00",
        "1985-04-12T23:59:59+00:60",
        "1985-04-12T23:20:50.123456789012345678901Z",
        "0000-01-01T00:00:00.000+00:01",
    ] {
        assert!(!Datetime::is_valid(bad), "{bad}");
    }
}

#[test]
fn language_and_uri_helpers() {
    let l: Language = "pt-BR".parse().unwrap();
    assert_eq!(l.primary_language(), "pt");
    assert!(Language::is_valid("zh-min-nan"));
    assert!(Language::is_valid("sgn-BE-FR"));
    assert!(Language::is_valid("en-GB-oed"));
    assert!(!Language::is_valid("en-GB-oed-x"));
    assert!(!Language::is_valid("x"));
    assert!(!Language::is_valid("en-x"));
    assert!(!Language::is_valid("en-a"));
    assert!(!Language::is_valid("en-a-x-foo"));
    assert!(!Language::is_valid("abcdefghi"));
    let u: Uri = "https://example.com".parse().unwrap();
    assert_eq!(u.scheme(), "https");
    assert!(Uri::is_valid("file:///etc/hosts"));
    assert!(Uri::is_valid("https://example.com/日本"));
    assert!(!Uri::is_valid("https://example.com/\u{0}"));
    assert!(!Uri::is_valid("1http://example.com"));
}

// ---------------------------------------------------------------------------------------------
// serde
// ---------------------------------------------------------------------------------------------

#[derive(Debug, PartialEq, serde::Serialize, serde::Deserialize)]
struct Record {
    did: Did,
    handle: Handle,
    uri: AtUri,
    rev: Tid,
    created_at: Datetime,
    langs: Vec<Language>,
    subject: AtIdentifier,
}

#[test]
fn serde_round_trip_and_rejection() {
    let rec = Record {
        did: "did:plc:ewvi7nxzyoun6zhxrhs64oiz".parse().unwrap(),
        handle: "alice.test".parse().unwrap(),
        uri: "at://did:plc:ewvi7nxzyoun6zhxrhs64oiz/app.bsky.feed.post/3jzfcijpj2z2a"
            .parse()
            .unwrap(),
        rev: "3jzfcijpj2z2a".parse().unwrap(),
        created_at: "1985-04-12T23:20:50.123Z".parse().unwrap(),
        langs: vec!["en".parse().unwrap(), "pt-BR".parse().unwrap()],
        subject: "bob.test".parse().unwrap(),
    };
    let json = serde_json::to_string(&rec).unwrap();
    assert_eq!(
        json,
        r#"{"did":"did:plc:ewvi7nxzyoun6zhxrhs64oiz","handle":"alice.test","uri":"at://did:plc:ewvi7nxzyoun6zhxrhs64oiz/app.bsky.feed.post/3jzfcijpj2z2a","rev":"3jzfcijpj2z2a","created_at":"1985-04-12T23:20:50.123Z","langs":["en","pt-BR"],"subject":"bob.test"}"#
    );
    let back: Record = serde_json::from_str(&json).unwrap();
    assert_eq!(back, rec);

    // Escaped JSON strings arrive as owned `String`s: the other visitor path.
    let d: Did = serde_json::from_str(r#""did:plc:ewvi7nxzyoun6zhxrhs64oi\u007a""#).unwrap();
    assert_eq!(d.as_str(), "did:plc:ewvi7nxzyoun6zhxrhs64oiz");
    let d: Did = serde_json::from_value(serde_json::json!("did:web:example.com")).unwrap();
    assert!(d.is_web());

    let bad = json.replace("alice.test", "alice..test");
    let err = serde_json::from_str::<Record>(&bad)
        .unwrap_err()
        .to_string();
    assert!(err.contains("invalid handle"), "{err}");
    assert!(err.contains("empty label"), "{err}");
    assert!(serde_json::from_str::<Tid>(r#""3JZFCIJPJ2Z2A""#).is_err());
    assert!(serde_json::from_str::<Datetime>(r#""1985-00-12T23:20:50.123Z""#).is_err());
    assert!(serde_json::from_str::<AtUri>(r#""at://did:plc:asdf123/""#).is_err());
    assert!(serde_json::from_str::<Nsid>(r#""com.example""#).is_err());
    assert!(serde_json::from_str::<Language>(r#""en-a-foo-a-bar""#).is_err());
    assert!(serde_json::from_str::<Did>("42").is_err());
    let n: Nsid = serde_json::from_str(r#""com.example.fooBar""#).unwrap();
    assert_eq!(
        serde_json::to_string(&n).unwrap(),
        r#""com.example.fooBar""#
    );
    let c: CidString =
        serde_json::from_str(r#""bafybeigdyrzt5sfp7udm7hu76uh7y26nf3efuylqabf3oclgtqy55fbzdi""#)
            .unwrap();
    assert!(c.as_str().starts_with("bafy"));
}

// ---------------------------------------------------------------------------------------------
// Property tests: round trips
// ---------------------------------------------------------------------------------------------

const LABEL: &str = "[a-zA-Z0-9]([a-zA-Z0-9-]{0,12}[a-zA-Z0-9])?";
const TLD: &str = "[a-zA-Z]([a-zA-Z0-9-]{0,12}[a-zA-Z0-9])?";

fn regex(re: &str) -> impl Strategy<Value = String> + use<> {
    proptest::string::string_regex(re).expect("valid test regex")
}

fn handle_strategy() -> impl Strategy<Value = String> {
    regex(&format!("({LABEL}\\.){{1,4}}{TLD}"))
}

fn did_strategy() -> impl Strategy<Value = String> {
    prop_oneof![
        "did:[a-z]{1,10}:[a-zA-Z0-9._:%-]{0,40}[a-zA-Z0-9._-]",
        "did:plc:[a-z2-7]{24}",
    ]
}

fn nsid_strategy() -> impl Strategy<Value = String> {
    regex(&format!(
        "{TLD}(\\.{LABEL}){{1,3}}\\.[a-zA-Z][a-zA-Z0-9]{{0,20}}"
    ))
}

fn rkey_strategy() -> impl Strategy<Value = String> {
    "[A-Za-z0-9._:~-]{1,60}".prop_filter("not . or ..", |s| s != "." && s != "..")
}

fn datetime_strategy() -> impl Strategy<Value = String> {
    (
        0u32..=9999,
        1u32..=12,
        1u32..=28,
        0u32..=23,
        0u32..=59,
        0u32..=59,
        prop::option::of("[0-9]{1,20}"),
        prop_oneof![
            Just("Z".to_string()),
            (any::<bool>(), 0u32..=23, 0u32..=59)
                .prop_filter("no -00:00", |(east, h, m)| *east || *h != 0 || *m != 0)
                .prop_map(|(east, h, m)| format!("{}{h:02}:{m:02}", if east { '+' } else { '-' })),
        ],
    )
        .prop_map(|(y, mo, d, h, mi, s, frac, tz)| {
            let frac = frac.map(|f| format!(".{f}")).unwrap_or_default();
            format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}{frac}{tz}")
        })
        // Year 0 early on January 1st with a positive offset is before year 0 in UTC.
        .prop_filter("not before year 0", |s| {
            chrono::DateTime::parse_from_rfc3339(s)
                .map(|t| chrono::Datelike::year(&t.to_utc()) >= 0)
                .unwrap_or(false)
        })
}

fn language_strategy() -> impl Strategy<Value = String> {
    (
        "[a-z]{2,3}|[a-z]{5,8}",
        prop::option::of("[A-Z][a-z]{3}"),
        prop::option::of("[A-Z]{2}|[0-9]{3}"),
        prop::option::of("[a-z0-9]{5,8}"),
        prop::option::of("x(-[a-zA-Z0-9]{1,8}){1,3}"),
    )
        .prop_map(|(l, script, region, variant, private)| {
            let mut s = l;
            for part in [script, region, variant, private].into_iter().flatten() {
                s.push('-');
                s.push_str(&part);
            }
            s
        })
}

/// Parses, displays, re-parses; the text and the value must survive unchanged.
fn round_trip<T>(s: &str) -> Result<T, TestCaseError>
where
    T: FromStr<Err = SyntaxError> + ToString + PartialEq + Debug,
{
    let v: T = s
        .parse()
        .map_err(|e: SyntaxError| TestCaseError::fail(format!("{s:?}: {e}")))?;
    let shown = v.to_string();
    prop_assert_eq!(&shown, s);
    let again: T = shown
        .parse()
        .map_err(|e: SyntaxError| TestCaseError::fail(e.to_string()))?;
    prop_assert_eq!(&again, &v);
    Ok(v)
}

proptest! {
    #[test]
    fn prop_handle_round_trip(s in handle_strategy().prop_filter("length", |s| s.len() <= 253)) {
        let h: Handle = round_trip(&s)?;
        prop_assert!(h.normalize().is_normalized());
        prop_assert_eq!(h.normalize().as_str().parse::<Handle>().ok(), Some(h.normalize()));
        let a: AtIdentifier = round_trip(&s)?;
        prop_assert!(!a.is_did());
    }

    #[test]
    fn prop_did_round_trip(s in did_strategy()) {
        let d: Did = round_trip(&s)?;
        prop_assert_eq!(format!("did:{}:{}", d.method(), d.identifier()), s.clone());
        let a: AtIdentifier = round_trip(&s)?;
        prop_assert!(a.is_did());
        let plc_shaped = d.identifier().len() == 24
            && d.identifier().bytes().all(|b| matches!(b, b'a'..=b'z' | b'2'..=b'7'));
        if d.is_plc() {
            prop_assert_eq!(d.check_blessed().is_ok(), plc_shaped);
        }
    }

    #[test]
    fn prop_nsid_round_trip(s in nsid_strategy().prop_filter("length", |s| s.len() <= 317)) {
        let n: Nsid = round_trip(&s)?;
        prop_assert_eq!(format!("{}.{}", n.domain_prefix(), n.name()), s);
        prop_assert!(n.normalize().as_str().parse::<Nsid>().is_ok());
    }

    #[test]
    fn prop_rkey_round_trip(s in rkey_strategy()) {
        let _: RecordKey = round_trip(&s)?;
    }

    #[test]
    fn prop_aturi_round_trip(
        authority in prop_oneof![handle_strategy(), did_strategy()]
            .prop_filter("length", |s| s.len() <= 253),
        collection in prop::option::of(nsid_strategy()),
        rkey in rkey_strategy(),
        with_rkey in any::<bool>(),
    ) {
        let mut s = format!("at://{authority}");
        if let Some(c) = &collection {
            s.push('/');
            s.push_str(c);
            if with_rkey {
                s.push('/');
                s.push_str(&rkey);
            }
        }
        let u: AtUri = round_trip(&s)?;
        prop_assert_eq!(u.authority().as_str(), authority.as_str());
        prop_assert_eq!(u.collection().map(Nsid::as_str), collection.as_deref());
        let want_rkey = (collection.is_some() && with_rkey).then_some(rkey.as_str());
        prop_assert_eq!(u.rkey().map(RecordKey::as_str), want_rkey);
        let built = AtUri::from_parts(
            u.authority().clone(), u.collection().cloned(), u.rkey().cloned(),
        ).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(built, u);
    }

    #[test]
    fn prop_tid_round_trip(ts in 0u64..(1 << 53), clock in 0u16..1024) {
        let t = Tid::new(ts, clock).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(t.timestamp_micros(), ts);
        prop_assert_eq!(t.clock_id(), clock);
        prop_assert_eq!(t.as_u64() >> 63, 0);
        let back: Tid = round_trip(t.as_str())?;
        prop_assert_eq!(back, t);
        prop_assert!(RecordKey::is_valid(t.as_str()));
    }

    #[test]
    fn prop_tid_any_u64_and_order(a in any::<u64>(), b in any::<u64>()) {
        let (ta, tb) = (Tid::from_u64(a), Tid::from_u64(b));
        let back: Tid = round_trip(ta.as_str())?;
        prop_assert_eq!(back.as_u64(), a);
        prop_assert_eq!(ta.as_str().len(), 13);
        prop_assert_eq!(ta.cmp(&tb), a.cmp(&b));
        prop_assert_eq!(ta.as_str().cmp(tb.as_str()), a.cmp(&b));
    }

    #[test]
    fn prop_datetime_round_trip(s in datetime_strategy()) {
        let d: Datetime = round_trip(&s)?;
        // chrono's RFC 3339 parser as an oracle for the instant (it accepts a superset).
        let oracle = chrono::DateTime::parse_from_rfc3339(&s)
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(d.to_chrono(), oracle);
        prop_assert_eq!(*d.to_chrono().offset(), *oracle.offset());
        prop_assert!(Datetime::check_syntax(&s).is_ok());
    }

    #[test]
    fn prop_datetime_from_utc(micros in -62_167_219_200_000_000i64..253_402_300_799_999_999) {
        let t = chrono::DateTime::from_timestamp_micros(micros).expect("in range");
        let d = Datetime::from_utc(t);
        let back: Datetime = round_trip(d.as_str())?;
        prop_assert_eq!(&back, &d);
        prop_assert_eq!(d.as_str().len(), 24);
        prop_assert_eq!(d.timestamp_millis(), t.timestamp_millis());
    }

    #[test]
    fn prop_language_round_trip(s in language_strategy()) {
        let _: Language = round_trip(&s)?;
        prop_assert!(Language::is_well_formed(&s));
    }

    #[test]
    fn prop_cid_round_trip(s in "b[a-z2-7]{58}|z[1-9A-HJ-NP-Za-km-z]{40,60}|m[A-Za-z0-9+]{20,60}") {
        let _: CidString = round_trip(&s)?;
    }

    #[test]
    fn prop_uri_round_trip(s in "[a-zA-Z][a-zA-Z0-9+.-]{0,10}:[!-~]{1,80}") {
        let u: Uri = round_trip(&s)?;
        prop_assert!(s.starts_with(u.scheme()));
    }
}

// ---------------------------------------------------------------------------------------------
// Property tests: no panics, and every parser agrees with itself
// ---------------------------------------------------------------------------------------------

/// Checks one parser on `s`: no panic, `is_valid` agrees with `FromStr`, accepted values keep
/// the text, errors quote at most 64 characters (+ ellipsis), and serde agrees.
fn probe<T>(s: &str, is_valid: fn(&str) -> bool)
where
    T: FromStr<Err = SyntaxError>
        + TryFrom<String, Error = SyntaxError>
        + ToString
        + PartialEq
        + Debug
        + serde::de::DeserializeOwned,
{
    let parsed = s.parse::<T>();
    assert_eq!(parsed.is_ok(), is_valid(s), "{s:?}");
    assert_eq!(T::try_from(s.to_owned()).is_ok(), parsed.is_ok(), "{s:?}");
    let via_serde = serde_json::from_value::<T>(serde_json::Value::String(s.to_owned()));
    assert_eq!(via_serde.is_ok(), parsed.is_ok(), "{s:?}");
    match parsed {
        Ok(v) => {
            assert_eq!(v.to_string(), s);
            assert_eq!(s.parse::<T>().as_ref(), Ok(&v));
        }
        Err(e) => {
            assert!(e.input.chars().count() <= 65, "{e}");
            assert!(!e.reason.is_empty());
            let _ = e.to_string();
        }
    }
}

fn probe_all(s: &str) {
    probe::<Did>(s, Did::is_valid);
    probe::<Handle>(s, Handle::is_valid);
    probe::<Nsid>(s, Nsid::is_valid);
    probe::<AtUri>(s, AtUri::is_valid);
    probe::<RecordKey>(s, RecordKey::is_valid);
    probe::<Tid>(s, Tid::is_valid);
    probe::<Datetime>(s, Datetime::is_valid);
    probe::<Language>(s, Language::is_valid);
    probe::<AtIdentifier>(s, AtIdentifier::is_valid);
    probe::<CidString>(s, CidString::is_valid);
    probe::<Uri>(s, Uri::is_valid);
    let _ = Datetime::check_syntax(s);
    // Strict language tags are a subset of well-formed ones.
    if Language::is_valid(s) {
        assert!(Language::is_well_formed(s), "{s:?}");
    }
    if Datetime::is_valid(s) {
        assert!(Datetime::check_syntax(s).is_ok(), "{s:?}");
    }
    if let Ok(d) = s.parse::<Did>() {
        let _ = (d.method(), d.identifier(), d.check_blessed());
    }
    if let Ok(h) = s.parse::<Handle>() {
        let _ = (h.tld(), h.has_disallowed_tld());
        assert!(Handle::is_valid(h.normalize().as_str()));
    }
    if let Ok(n) = s.parse::<Nsid>() {
        let _ = n.authority();
        assert!(Nsid::is_valid(n.normalize().as_str()));
    }
}

fn all_fixture_lines() -> &'static [String] {
    static LINES: OnceLock<Vec<String>> = OnceLock::new();
    LINES.get_or_init(|| {
        let mut files: Vec<String> = std::fs::read_dir(FIXTURE_DIR)
            .expect("fixture dir")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".txt"))
            .collect();
        files.sort();
        files.iter().flat_map(|f| cases(f)).collect()
    })
}

#[derive(Debug, Clone)]
enum Mutation {
    Insert(usize, char),
    Delete(usize),
    Replace(usize, char),
    Truncate(usize),
    Repeat(usize),
}

fn mutation_strategy() -> impl Strategy<Value = Mutation> {
    let interesting = prop_oneof![
        prop::sample::select(vec![
            '.', '-', ':', '/', '%', '#', '?', ' ', '\n', '\0', 'Z', 'z', 'T', '+', '@', '_', '~',
            'é', '💩', '\u{200b}', 'x', '0', '9', 'A',
        ]),
        any::<char>(),
    ];
    prop_oneof![
        (any::<usize>(), interesting.clone()).prop_map(|(i, c)| Mutation::Insert(i, c)),
        any::<usize>().prop_map(Mutation::Delete),
        (any::<usize>(), interesting).prop_map(|(i, c)| Mutation::Replace(i, c)),
        any::<usize>().prop_map(Mutation::Truncate),
        (1usize..40).prop_map(Mutation::Repeat),
    ]
}

fn mutate(s: &str, mutations: &[Mutation]) -> String {
    let mut chars: Vec<char> = s.chars().collect();
    for m in mutations {
        let n = chars.len();
        match *m {
            Mutation::Insert(i, c) => chars.insert(i % (n + 1), c),
            Mutation::Delete(i) if n > 0 => {
                chars.remove(i % n);
            }
            Mutation::Replace(i, c) if n > 0 => chars[i % n] = c,
            Mutation::Truncate(i) => chars.truncate(i % (n + 1)),
            Mutation::Repeat(k) => {
                let copy = chars.clone();
                for _ in 0..k.min(300) {
                    chars.extend_from_slice(&copy);
                    if chars.len() > 20_000 {
                        break;
                    }
                }
            }
            _ => {}
        }
    }
    chars.into_iter().collect()
}

#[test]
fn no_panic_on_every_fixture_line() {
    for line in all_fixture_lines() {
        probe_all(line);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn no_panic_random_bytes(bytes in prop::collection::vec(any::<u8>(), 0..300)) {
        probe_all(&String::from_utf8_lossy(&bytes));
    }

    #[test]
    fn no_panic_random_strings(s in any::<String>()) {
        probe_all(&s);
    }

    #[test]
    fn no_panic_format_alphabet(s in "[a-zA-Z0-9.:/%#?@_~+=-]{0,80}") {
        probe_all(&s);
        probe_all(&format!("at://{s}"));
        probe_all(&format!("did:{s}"));
    }

    #[test]
    fn no_panic_mutated_fixtures(
        line in prop::sample::select(all_fixture_lines().to_vec()),
        mutations in prop::collection::vec(mutation_strategy(), 1..4),
    ) {
        probe_all(&mutate(&line, &mutations));
    }

    #[test]
    fn no_panic_mutated_datetimes(
        s in datetime_strategy(),
        mutations in prop::collection::vec(mutation_strategy(), 1..3),
    ) {
        probe_all(&mutate(&s, &mutations));
    }
}
