//! Properties of everything that parses hostile input: email addresses, the invitation CSV,
//! link tokens, session JWTs, the JSON request bodies and the X-Forwarded-For chain. Each property holds for every input
//! proptest generates; a failing case is shrunk and saved under `proptest-regressions/`.
//!
//! Case counts are kept low enough that the whole file runs in seconds in a debug build;
//! `PROPTEST_CASES` raises them for a longer hunt.

use proptest::prelude::*;

/// `cases` unless `PROPTEST_CASES` asks for more (or fewer).
fn config(cases: u32) -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(cases);
    ProptestConfig {
        cases,
        ..ProptestConfig::default()
    }
}

mod email {
    use super::*;
    use latchkey::domain::{Email, EmailError};

    /// Characters whose lower case is longer or different in shape (`İ` → `i̇`, the Kelvin
    /// sign → `k`, final sigma), next to plain ASCII: where normalisation goes wrong.
    const LOCAL_CHARS: &str = "[a-zA-Z0-9+_=-]|İ|K|Σ|ß|é|Ä";

    fn local_part() -> impl Strategy<Value = String> {
        prop::collection::vec(
            prop::collection::vec(prop::string::string_regex(LOCAL_CHARS).unwrap(), 1..12),
            1..4,
        )
        .prop_map(|segments| {
            segments
                .iter()
                .map(|s| s.concat())
                .collect::<Vec<_>>()
                .join(".")
        })
    }

    fn domain(max_label: usize) -> impl Strategy<Value = String> {
        (
            prop::collection::vec(
                prop::string::string_regex(&format!("[a-zA-Z0-9]{{1,{max_label}}}")).unwrap(),
                1..6,
            ),
            "[a-zA-Z]{2,6}",
        )
            .prop_map(|(labels, tld)| format!("{}.{tld}", labels.join(".")))
    }

    /// A well-formed address exactly `MAX_EMAIL_LEN` characters long: the boundary.
    fn at_the_limit() -> impl Strategy<Value = String> {
        (local_part(), "[a-z]{2,6}").prop_map(|(local, tld)| {
            let local: String = local.chars().take(40).collect();
            let local = local.trim_matches('.');
            let local = if local.is_empty() { "a" } else { local };
            let room = latchkey::domain::MAX_EMAIL_LEN - local.chars().count() - 1 - tld.len();
            // Labels of at most 63 characters, each followed by a dot, filling `room`.
            let mut domain = String::new();
            while domain.len() < room {
                let label = (room - domain.len() - 1).clamp(1, 63);
                domain.push_str(&"d".repeat(label));
                domain.push('.');
            }
            format!("{local}@{domain}{tld}")
        })
    }

    /// Mostly well-formed addresses, some at or near the length limit, with non-ASCII local
    /// parts.
    fn address() -> impl Strategy<Value = String> {
        prop_oneof![
            (local_part(), domain(12)).prop_map(|(l, d)| format!("{l}@{d}")),
            (local_part(), domain(60)).prop_map(|(l, d)| format!("{l}@{d}")),
            at_the_limit(),
        ]
    }

    /// Plain ASCII addresses: their upper and lower case are each other's inverse.
    fn ascii_address() -> impl Strategy<Value = String> {
        "[a-zA-Z0-9+_-]{1,20}(\\.[a-zA-Z0-9+_-]{1,10}){0,2}@[a-zA-Z0-9]{1,15}\\.[a-zA-Z]{2,6}"
    }

    /// Anything: arbitrary text, and text made of the characters addresses are made of.
    fn any_text() -> impl Strategy<Value = String> {
        prop_oneof![
            any::<String>(),
            "[a-zA-Z@. \r\n\t\"<>\\[\\]()İΣ\u{0}\u{7f}\u{85}\u{200b}-]{0,80}",
            address(),
        ]
    }

    proptest! {
        #![proptest_config(config(512))]

        #[test]
        fn parsing_any_text_never_panics(raw in any_text()) {
            let _ = Email::parse(&raw);
        }

        #[test]
        fn a_parsed_address_parses_again_to_itself(raw in any_text()) {
            if let Ok(email) = Email::parse(&raw) {
                prop_assert_eq!(Email::parse(email.as_str()), Ok(email.clone()));
                prop_assert_eq!(Email::parse(&email.to_string()), Ok(email.clone()));
                let stored = serde_json::to_string(&email).unwrap();
                prop_assert_eq!(serde_json::from_str::<Email>(&stored).ok(), Some(email));
            }
        }

        #[test]
        fn a_parsed_address_is_trimmed_lower_case_and_within_the_limit(raw in any_text()) {
            if let Ok(email) = Email::parse(&raw) {
                let text = email.as_str();
                prop_assert_eq!(text, text.trim());
                prop_assert_eq!(text.to_owned(), text.to_lowercase());
                prop_assert!(text.chars().count() <= latchkey::domain::MAX_EMAIL_LEN, "{}", text);
                prop_assert!(!text.chars().any(char::is_control), "{:?}", text);
            }
        }

        #[test]
        fn case_and_surrounding_whitespace_do_not_change_an_ascii_address(
            raw in ascii_address(),
            flips in prop::collection::vec(any::<bool>(), 64),
            before in "[ \t]{0,3}",
            after in "[ \t\r\n]{0,3}",
        ) {
            let varied: String = raw
                .chars()
                .zip(flips.iter().cycle())
                .map(|(c, &up)| if up { c.to_ascii_uppercase() } else { c.to_ascii_lowercase() })
                .collect();
            prop_assert_eq!(
                Email::parse(&format!("{before}{varied}{after}")),
                Email::parse(&raw)
            );
        }

        #[test]
        fn a_control_character_inside_an_address_is_refused(
            raw in ascii_address(),
            control in prop_oneof![
                Just("\r\n".to_owned()),
                Just("\r\nBcc: eve@evil.test\r\n".to_owned()),
                any::<char>().prop_filter("control", |c| c.is_control()).prop_map(String::from),
            ],
            at in any::<prop::sample::Index>(),
        ) {
            // Strictly inside: at the ends, whitespace is trimmed away, which is harmless.
            let at = 1 + at.index(raw.len() - 1);
            let hostile = format!("{}{control}{}", &raw[..at], &raw[at..]);
            prop_assert_eq!(Email::parse(&hostile), Err(EmailError::ControlCharacter));
        }
    }
}

mod csv {
    use super::*;
    use latchkey::csv_rows::{CsvRow, CsvRows};

    /// One person's row: the two columns the reader looks for, and columns it must ignore.
    #[derive(Debug, Clone)]
    struct Person {
        email: String,
        role: Option<String>,
        extras: Vec<String>,
    }

    /// How the file is written: everything a spreadsheet may vary.
    #[derive(Debug, Clone)]
    struct Layout {
        bom: bool,
        crlf: bool,
        final_newline: bool,
        with_role_column: bool,
        /// Position of the email and role columns among the extra ones.
        email_at: prop::sample::Index,
        role_at: prop::sample::Index,
        /// Per header cell: upper-case it, pad it with spaces.
        header_upper: Vec<bool>,
        header_padded: Vec<bool>,
        /// Per cell, cycled: quote it even when it needs no quotes.
        quote_anyway: Vec<bool>,
        /// Per row, cycled: blank lines written before it.
        blank_lines: Vec<u8>,
    }

    /// Cell text: separators, quotes and line breaks included; no whitespace at either end,
    /// since the reader trims cells.
    fn cell() -> impl Strategy<Value = String> {
        "[a-zA-Z0-9@._,;\"\r\n é=+-]{0,16}".prop_map(|s| s.trim().to_owned())
    }

    fn person(extra_columns: usize) -> impl Strategy<Value = Person> {
        (
            cell().prop_filter("an email cell is never empty", |s| !s.is_empty()),
            prop::option::of(cell().prop_filter("empty means no role", |s| !s.is_empty())),
            prop::collection::vec(cell(), extra_columns),
        )
            .prop_map(|(email, role, extras)| Person {
                email,
                role,
                extras,
            })
    }

    fn layout() -> impl Strategy<Value = Layout> {
        (
            (any::<bool>(), any::<bool>(), any::<bool>(), any::<bool>()),
            (any::<prop::sample::Index>(), any::<prop::sample::Index>()),
            (
                prop::collection::vec(any::<bool>(), 8),
                prop::collection::vec(any::<bool>(), 8),
                prop::collection::vec(any::<bool>(), 1..8),
                prop::collection::vec(0u8..3, 1..5),
            ),
        )
            .prop_map(
                |(
                    (bom, crlf, final_newline, with_role_column),
                    (email_at, role_at),
                    (header_upper, header_padded, quote_anyway, blank_lines),
                )| Layout {
                    bom,
                    crlf,
                    final_newline,
                    with_role_column,
                    email_at,
                    role_at,
                    header_upper,
                    header_padded,
                    quote_anyway,
                    blank_lines,
                },
            )
    }

    /// A table: the names of the extra columns, its people, and how it is written.
    fn table() -> impl Strategy<Value = (Vec<String>, Vec<Person>, Layout)> {
        prop::collection::vec(
            "[a-z]{1,8}".prop_filter("not a column the reader looks for", |n| {
                n != "email" && n != "role"
            }),
            0..4,
        )
        .prop_flat_map(|extra_names| {
            let n = extra_names.len();
            (
                Just(extra_names),
                prop::collection::vec(person(n), 0..12),
                layout(),
            )
        })
    }

    enum Column {
        Email,
        Role,
        Extra(usize),
    }

    /// Writes the table as a spreadsheet would, and returns the rows the reader must give:
    /// each with the physical line it starts on.
    fn write(extra_names: &[String], people: &[Person], layout: &Layout) -> (Vec<u8>, Vec<CsvRow>) {
        let mut columns: Vec<Column> = (0..extra_names.len()).map(Column::Extra).collect();
        columns.insert(layout.email_at.index(columns.len() + 1), Column::Email);
        if layout.with_role_column {
            columns.insert(layout.role_at.index(columns.len() + 1), Column::Role);
        }
        let newline = if layout.crlf { "\r\n" } else { "\n" };
        let mut quote_anyway = layout.quote_anyway.iter().cycle();
        let mut field = |text: &str| {
            let needs_quotes = text.contains([',', '"', '\r', '\n']);
            if needs_quotes || *quote_anyway.next().unwrap() {
                format!("\"{}\"", text.replace('"', "\"\""))
            } else {
                text.to_owned()
            }
        };

        let mut out = String::new();
        if layout.bom {
            out.push('\u{feff}');
        }
        let header: Vec<String> = columns
            .iter()
            .enumerate()
            .map(|(i, column)| {
                let name = match column {
                    Column::Email => "email",
                    Column::Role => "role",
                    Column::Extra(j) => extra_names[*j].as_str(),
                };
                let name = if layout.header_upper[i % 8] {
                    name.to_uppercase()
                } else {
                    name.to_owned()
                };
                // Padding goes inside the quotes: outside them, a quote is just text.
                if layout.header_padded[i % 8] {
                    field(&format!("  {name} "))
                } else {
                    field(&name)
                }
            })
            .collect();
        out.push_str(&header.join(","));

        let mut expected = Vec::new();
        let mut blank_lines = layout.blank_lines.iter().cycle();
        for person in people {
            out.push_str(newline);
            for _ in 0..*blank_lines.next().unwrap() {
                out.push_str(newline);
            }
            let line = 1 + line_breaks(&out);
            let cells: Vec<String> = columns
                .iter()
                .map(|column| match column {
                    Column::Email => field(&person.email),
                    Column::Role => field(person.role.as_deref().unwrap_or("")),
                    Column::Extra(j) => field(&person.extras[*j]),
                })
                .collect();
            out.push_str(&cells.join(","));
            expected.push(CsvRow {
                line,
                email: person.email.clone(),
                role: person.role.clone().filter(|_| layout.with_role_column),
            });
        }
        if layout.final_newline {
            out.push_str(newline);
        }
        (out.into_bytes(), expected)
    }

    fn read_all(bytes: &[u8]) -> Result<Vec<CsvRow>, latchkey::csv_rows::CsvError> {
        CsvRows::new(bytes)?.collect()
    }

    /// Bytes that look like CSV often enough to get past the header: separators, quotes,
    /// line breaks, a BOM, invalid UTF-8.
    fn csv_like_bytes() -> impl Strategy<Value = Vec<u8>> {
        prop::collection::vec(
            prop_oneof![
                Just(b"email".to_vec()),
                Just(b"role".to_vec()),
                Just(b",".to_vec()),
                Just(b"\"".to_vec()),
                Just(b"\r\n".to_vec()),
                Just(b"\n".to_vec()),
                Just(b"\r".to_vec()),
                Just(b" ".to_vec()),
                Just("\u{feff}".as_bytes().to_vec()),
                Just(b"\xff\xfe".to_vec()),
                Just(b"ada@example.com".to_vec()),
                prop::collection::vec(any::<u8>(), 1..4),
            ],
            0..64,
        )
        .prop_map(|parts| parts.concat())
    }

    proptest! {
        #![proptest_config(config(256))]

        #[test]
        fn any_bytes_give_rows_or_an_error_never_a_panic(
            bytes in prop_oneof![prop::collection::vec(any::<u8>(), 0..512), csv_like_bytes()],
            max_rows in prop::option::of(0usize..8),
        ) {
            if let Ok(rows) = CsvRows::new(bytes.as_slice()) {
                let rows = match max_rows {
                    Some(max) => rows.max_rows(max),
                    None => rows,
                };
                let mut last_line = 0;
                let mut failed = false;
                for row in rows {
                    prop_assert!(!failed, "a row after an error");
                    match row {
                        Ok(row) => {
                            // Every record ends with a line break (LF, CR or CRLF) or the file.
                            prop_assert!(row.line > last_line, "lines go forward: {:?}", row);
                            last_line = row.line;
                        }
                        Err(_) => failed = true,
                    }
                }
            }
        }

        #[test]
        fn a_written_table_reads_back_exactly((extra_names, people, layout) in table()) {
            let (bytes, expected) = write(&extra_names, &people, &layout);
            prop_assert_eq!(
                read_all(&bytes),
                Ok(expected),
                "file: {:?}",
                String::from_utf8_lossy(&bytes)
            );
        }
    }

    /// Line breaks as the reader counts them: each LF, each lone CR, and a CRLF once.
    fn line_breaks(text: &str) -> u64 {
        (text.matches('\n').count() + text.matches('\r').count() - text.matches("\r\n").count())
            as u64
    }

    /// Found by `any_bytes_give_rows_or_an_error_never_a_panic`: the `csv` crate ends a
    /// record at a lone CR (old Mac line endings), and the line count once counted only LFs,
    /// so every row of such a file was reported on the same line.
    #[test]
    fn lone_carriage_returns_count_as_line_breaks() {
        let rows = read_all(b"email\rada@example.com\rgrace@example.com\r").unwrap();
        let lines: Vec<u64> = rows.iter().map(|r| r.line).collect();
        assert_eq!(lines, [2, 3]);
    }
}

mod token {
    use super::*;
    use latchkey::domain::UserId;
    use latchkey::secrets::Keys;
    use latchkey::token::{LinkToken, Purpose};

    const BASE64URL: &str = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

    fn keys() -> Keys {
        Keys::derive(b"property-test-master-secret-32by")
    }

    fn purpose() -> impl Strategy<Value = Purpose> {
        prop_oneof![
            Just(Purpose::Invite),
            Just(Purpose::Reset),
            Just(Purpose::Verify),
            Just(Purpose::EmailChange),
        ]
    }

    /// Text shaped like a token some of the time: `<22 chars>.<43 chars>` from the base64url
    /// alphabet and a few others.
    fn token_like() -> impl Strategy<Value = String> {
        prop_oneof![
            any::<String>(),
            "[A-Za-z0-9_=+/. -]{20,24}\\.[A-Za-z0-9_=+/. -]{41,45}",
            "[A-Za-z0-9_-]{22}\\.[A-Za-z0-9_-]{43}",
        ]
    }

    proptest! {
        #![proptest_config(config(512))]

        #[test]
        fn parsing_any_text_never_panics(raw in token_like()) {
            if let Some(token) = LinkToken::parse(&raw) {
                // Whatever parses is in the one shape `expose` writes.
                prop_assert_eq!(token.expose(), raw.trim());
            }
        }

        #[test]
        fn a_generated_token_round_trips_through_its_link_text(purpose in purpose()) {
            let token = LinkToken::generate(&UserId::generate());
            let text = token.expose();
            let parsed = LinkToken::parse(&text).expect("its own text parses");
            prop_assert_eq!(parsed.user_id(), token.user_id());
            prop_assert_eq!(parsed.expose(), text);
            prop_assert_eq!(parsed.hash(&keys(), purpose), token.hash(&keys(), purpose));
        }

        #[test]
        fn changing_any_one_character_of_a_token_makes_it_fail_to_verify(
            purpose in purpose(),
            at in any::<prop::sample::Index>(),
            replacement in prop_oneof![
                prop::sample::select(BASE64URL.chars().collect::<Vec<_>>()),
                any::<char>(),
            ],
        ) {
            let token = LinkToken::generate(&UserId::generate());
            let stored = token.hash(&keys(), purpose);
            let text = token.expose();
            let mut chars: Vec<char> = text.chars().collect();
            let at = at.index(chars.len());
            prop_assume!(chars[at] != replacement);
            chars[at] = replacement;
            let changed: String = chars.into_iter().collect();
            match LinkToken::parse(&changed) {
                None => {}
                Some(other) => prop_assert!(
                    !other.hash(&keys(), purpose).matches(Some(stored.as_str())),
                    "{changed} verifies as {text}"
                ),
            }
        }
    }
}

mod session {
    use super::*;
    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use latchkey::secrets::Keys;
    use latchkey::session::{issue, verify};

    fn keys() -> Keys {
        Keys::derive(b"property-test-master-secret-32by")
    }

    fn fresh_token(user: &str, tenant: &str, version: u64) -> String {
        issue(
            &keys(),
            user,
            tenant,
            version,
            chrono::Utc::now(),
            std::time::Duration::from_secs(600),
        )
        .unwrap()
        .0
    }

    /// Three dot-separated parts of base64url-encoded arbitrary JSON or bytes.
    fn jwt_shaped() -> impl Strategy<Value = String> {
        let part = prop_oneof![
            prop::collection::vec(any::<u8>(), 0..64).prop_map(|b| URL_SAFE_NO_PAD.encode(b)),
            "\\{\"alg\":\"(HS256|none|RS256|HS512)\"(,\"typ\":\"JWT\")?\\}"
                .prop_map(|h| URL_SAFE_NO_PAD.encode(h)),
            "[A-Za-z0-9_=+/-]{0,60}",
        ];
        (part.clone(), part.clone(), part).prop_map(|(h, p, s)| format!("{h}.{p}.{s}"))
    }

    proptest! {
        #![proptest_config(config(256))]

        #[test]
        fn verifying_any_text_never_panics_and_never_accepts_it(
            raw in prop_oneof![any::<String>(), jwt_shaped()],
        ) {
            prop_assert!(verify(&keys(), &raw).is_err(), "{raw}");
        }

        #[test]
        fn changing_one_character_of_header_payload_or_signature_is_rejected(
            part in 0usize..3,
            at in any::<prop::sample::Index>(),
            replacement in "[A-Za-z0-9_=.-]",
        ) {
            let token = fresh_token("someone", "acme", 1);
            prop_assert!(verify(&keys(), &token).is_ok());
            let mut parts: Vec<String> = token.split('.').map(str::to_owned).collect();
            let mut chars: Vec<char> = parts[part].chars().collect();
            let at = at.index(chars.len());
            let replacement = replacement.chars().next().unwrap();
            prop_assume!(chars[at] != replacement);
            chars[at] = replacement;
            parts[part] = chars.into_iter().collect();
            let tampered = parts.join(".");
            prop_assert!(verify(&keys(), &tampered).is_err(), "{tampered} accepted");
        }

        #[test]
        fn claims_rewritten_under_the_original_signature_are_rejected(
            sub in "[A-Za-z0-9_-]{1,22}",
            tid in "[a-z]{3,10}",
            sv in any::<u64>(),
        ) {
            let token = fresh_token("someone", "acme", 1);
            let (header, rest) = token.split_once('.').unwrap();
            let (payload, signature) = rest.split_once('.').unwrap();
            let mut claims: serde_json::Value =
                serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap();
            claims["sub"] = sub.clone().into();
            claims["tid"] = tid.clone().into();
            claims["sv"] = sv.into();
            prop_assume!(sub != "someone" || tid != "acme" || sv != 1);
            let forged_payload = URL_SAFE_NO_PAD.encode(claims.to_string());
            let forged = format!("{header}.{forged_payload}.{signature}");
            prop_assert!(verify(&keys(), &forged).is_err(), "{forged} accepted");
        }

        #[test]
        fn a_header_that_names_another_algorithm_is_rejected(
            alg in "(none|None|HS384|HS512|RS256|ES256|EdDSA|hs256)",
            keep_signature in any::<bool>(),
        ) {
            let token = fresh_token("someone", "acme", 1);
            let (_, rest) = token.split_once('.').unwrap();
            let (payload, signature) = rest.split_once('.').unwrap();
            let header = URL_SAFE_NO_PAD.encode(format!(r#"{{"alg":"{alg}","typ":"JWT"}}"#));
            let signature = if keep_signature { signature } else { "" };
            let forged = format!("{header}.{payload}.{signature}");
            prop_assert!(verify(&keys(), &forged).is_err(), "{forged} accepted");
        }
    }
}

mod source {
    use std::net::IpAddr;

    use super::*;
    use latchkey::http::source_network;
    use latchkey::lambda_http::aws_lambda_events::apigw::ApiGatewayV2httpRequestContext;
    use latchkey::lambda_http::http::HeaderValue;
    use latchkey::lambda_http::request::RequestContext;
    use latchkey::lambda_http::{Body, Request, RequestExt};

    /// A request API Gateway received from `peer` with this X-Forwarded-For.
    fn request(peer: IpAddr, forwarded_for: &[u8]) -> Request {
        let mut context = ApiGatewayV2httpRequestContext::default();
        context.http.source_ip = Some(peer.to_string());
        let mut req =
            Request::new(Body::Empty).with_request_context(RequestContext::ApiGatewayV2(context));
        let value = HeaderValue::from_bytes(forwarded_for).expect("a header value");
        req.headers_mut().insert("x-forwarded-for", value);
        req
    }

    /// What a client may write in the header itself: addresses, commas, spaces and any other
    /// byte a header value can carry, text or not.
    fn client_written() -> impl Strategy<Value = Vec<u8>> {
        let byte = prop_oneof![
            4 => prop::sample::select(b"0123456789.:, ".to_vec()),
            1 => 0x20u8..0x7f,
            1 => 0x80u8..=0xff,
        ];
        prop::collection::vec(byte, 0..64)
    }

    proptest! {
        #![proptest_config(config(256))]

        #[test]
        fn what_a_client_writes_before_trusted_proxies_never_changes_its_source(
            prefix in client_written(),
            caller in any::<IpAddr>(),
            proxies in prop::collection::vec(any::<IpAddr>(), 1..=5),
            gateway_appends_the_peer in any::<bool>(),
        ) {
            let mut everyone = proxies.clone();
            everyone.push(caller);
            everyone.sort();
            everyone.dedup();
            prop_assume!(everyone.len() == proxies.len() + 1);
            // The caller reached the first proxy, each proxy appended who called it, and the
            // last one (API Gateway's peer) called the API.
            let (peer, forwarders) = proxies.split_last().unwrap();
            let mut chain: Vec<IpAddr> = std::iter::once(caller).chain(forwarders.iter().copied()).collect();
            if gateway_appends_the_peer {
                chain.push(*peer);
            }
            let chain = chain.iter().map(IpAddr::to_string).collect::<Vec<_>>().join(", ");
            let forged = [prefix.as_slice(), b", ", chain.as_bytes()].concat();
            let trusted = proxies.len() as u8;

            let source = source_network(&request(*peer, &forged), trusted);

            prop_assert_eq!(source, source_network(&request(caller, b""), 0));
        }

        #[test]
        fn with_no_trusted_proxy_the_header_is_never_read(
            header in client_written(),
            peer in any::<IpAddr>(),
        ) {
            let source = source_network(&request(peer, &header), 0);

            prop_assert_eq!(source, source_network(&request(peer, b""), 0));
        }
    }
}

/// The fuzz targets' checks: one list of routes for both.
#[allow(dead_code)] // the target bodies are for fuzz/ and shared/tests/fuzz_regressions.rs
#[path = "../../fuzz/src/lib.rs"]
mod harness;

mod json_bodies {
    use super::*;
    use harness::{ROUTES, check_every_route, request};
    use latchkey::lambda_http::Body;

    /// Any JSON value, with the field names of the request types among the keys so that
    /// the decoding gets past "unknown field" and into the fields' own types.
    fn json_value() -> impl Strategy<Value = serde_json::Value> {
        let key = prop_oneof![
            prop::sample::select(vec![
                "email",
                "role",
                "tenant",
                "password",
                "token",
                "name",
                "subdomain",
                "invitations",
                "send_email",
                "new_email",
            ])
            .prop_map(str::to_owned),
            any::<String>(),
        ];
        let leaf = prop_oneof![
            Just(serde_json::Value::Null),
            any::<bool>().prop_map(serde_json::Value::from),
            any::<i64>().prop_map(serde_json::Value::from),
            any::<f64>().prop_map(serde_json::Value::from),
            any::<String>().prop_map(serde_json::Value::from),
        ];
        leaf.prop_recursive(4, 48, 6, move |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..6).prop_map(serde_json::Value::from),
                prop::collection::btree_map(key.clone(), inner, 0..6)
                    .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
            ]
        })
    }

    fn content_type() -> impl Strategy<Value = Option<String>> {
        prop_oneof![
            8 => Just(Some("application/json".to_owned())),
            1 => Just(Some("Application/JSON; charset=utf-8".to_owned())),
            1 => Just(None),
            1 => "[a-z]{1,10}/[a-z+.-]{1,12}".prop_map(Some),
        ]
    }

    proptest! {
        #![proptest_config(config(256))]

        #[test]
        fn any_json_value_decodes_or_is_refused_with_a_4xx_problem(
            value in json_value(),
            content_type in content_type(),
        ) {
            let text = serde_json::to_string(&value).unwrap();
            let checked = check_every_route(&request(content_type.as_deref(), Body::Text(text)));
            prop_assert_eq!(checked, Ok(()));
        }

        #[test]
        fn any_bytes_decode_or_are_refused_with_a_4xx_problem(
            bytes in prop::collection::vec(any::<u8>(), 0..256),
            content_type in content_type(),
        ) {
            let checked = check_every_route(&request(content_type.as_deref(), Body::Binary(bytes)));
            prop_assert_eq!(checked, Ok(()));
        }
    }

    #[test]
    fn a_body_over_the_limit_is_refused_as_too_large_for_every_route() {
        let padding = " ".repeat(latchkey::http::MAX_JSON_BODY);
        let req = request(
            Some("application/json"),
            Body::Text(format!("{{{padding}}}")),
        );
        for (route, decode) in ROUTES {
            let status = decode(&req).map_err(|p| p.status());
            assert_eq!(status, Err(413), "{route}");
        }
    }

    #[test]
    fn nesting_deeper_than_serde_allows_is_refused_with_400_for_every_route() {
        let deep = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
        let req = request(Some("application/json"), Body::Text(deep));
        for (route, decode) in ROUTES {
            let status = decode(&req).map_err(|p| p.status());
            assert_eq!(status, Err(400), "{route}");
        }
    }
}
