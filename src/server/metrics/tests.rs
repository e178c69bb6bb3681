use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::TcpStream;

use super::*;

/// One sample of the exposition format: name, labels, value.
#[derive(Debug, PartialEq)]
struct Sample {
    name: String,
    labels: Vec<(String, String)>,
    value: f64,
}

fn is_name(s: &str, colon: bool) -> bool {
    let mut chars = s.chars();
    let first = chars.next();
    first.is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || (colon && c == ':'))
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || (colon && c == ':'))
}

/// Parses Prometheus text exposition line by line, failing on anything malformed:
/// `# HELP name text`, `# TYPE name kind` before a family's samples, and samples
/// `name{label="value",...} number`.
fn parse_exposition(text: &str) -> Vec<Sample> {
    let mut types: HashMap<String, String> = HashMap::new();
    let mut samples = Vec::new();
    assert!(text.ends_with('\n'), "ends with a newline");
    for (n, line) in text.lines().enumerate() {
        let at = |what: &str| format!("line {}: {what}: {line:?}", n + 1);
        if let Some(rest) = line.strip_prefix("# ") {
            let mut parts = rest.splitn(3, ' ');
            let keyword = parts.next().unwrap();
            let name = parts.next().unwrap_or_default();
            let tail = parts.next().unwrap_or_default();
            assert!(is_name(name, true), "{}", at("metric name"));
            match keyword {
                "HELP" => assert!(!tail.is_empty(), "{}", at("help text")),
                "TYPE" => {
                    assert!(
                        ["counter", "gauge", "histogram", "summary", "untyped"].contains(&tail),
                        "{}",
                        at("type")
                    );
                    assert!(
                        types.insert(name.to_owned(), tail.to_owned()).is_none(),
                        "{}",
                        at("one TYPE per family")
                    );
                }
                _ => panic!("{}", at("comment keyword")),
            }
            continue;
        }
        assert!(!line.is_empty(), "{}", at("empty line"));
        let name_end = line.find(['{', ' ']).expect("a value");
        let name = &line[..name_end];
        assert!(is_name(name, true), "{}", at("sample name"));
        let mut rest = &line[name_end..];
        let mut labels = Vec::new();
        if let Some(inner) = rest.strip_prefix('{') {
            let mut chars = inner.char_indices().peekable();
            let consumed = loop {
                let start = chars.peek().map(|&(i, _)| i).expect("label or }");
                if inner[start..].starts_with('}') {
                    break start + 1;
                }
                let eq = inner[start..].find('=').map(|i| i + start).expect("=");
                let label = &inner[start..eq];
                assert!(is_name(label, false), "{}", at("label name"));
                assert_eq!(&inner[eq + 1..eq + 2], "\"", "{}", at("quoted label value"));
                let mut value = String::new();
                let mut escaped = false;
                let mut end = None;
                for (i, c) in inner[eq + 2..].char_indices() {
                    match (escaped, c) {
                        (true, 'n') => value.push('\n'),
                        (true, '\\' | '"') => value.push(c),
                        (true, _) => panic!("{}", at("escape")),
                        (false, '\\') => {
                            escaped = true;
                            continue;
                        }
                        (false, '"') => {
                            end = Some(eq + 2 + i + 1);
                            break;
                        }
                        (false, c) => value.push(c),
                    }
                    escaped = false;
                }
                let end = end.expect("closing quote");
                labels.push((label.to_owned(), value));
                while chars.peek().is_some_and(|&(i, _)| i < end) {
                    chars.next();
                }
                match chars.peek() {
                    Some(&(_, ',')) => {
                        chars.next();
                    }
                    Some(&(_, '}')) => {}
                    _ => panic!("{}", at("label separator")),
                }
            };
            rest = &inner[consumed..];
        }
        let value = rest.strip_prefix(' ').expect("a space before the value");
        let value: f64 = match value {
            "+Inf" => f64::INFINITY,
            "-Inf" => f64::NEG_INFINITY,
            v => v.parse().unwrap_or_else(|_| panic!("{}", at("value"))),
        };
        let family = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|s| name.strip_suffix(s).filter(|f| types.contains_key(*f)))
            .unwrap_or(name);
        assert!(types.contains_key(family), "{}", at("TYPE before samples"));
        samples.push(Sample {
            name: name.to_owned(),
            labels,
            value,
        });
    }
    samples
}

fn value(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> f64 {
    samples
        .iter()
        .find(|s| {
            s.name == name
                && s.labels.len() == labels.len()
                && labels
                    .iter()
                    .all(|(k, v)| s.labels.iter().any(|(a, b)| a == k && b == v))
        })
        .unwrap_or_else(|| panic!("no {name} {labels:?}"))
        .value
}

fn filled() -> Metrics {
    let m = Metrics::new();
    m.set_rooms(2);
    m.set_peers(5);
    m.add_bytes_sent(1000);
    m.add_bytes_sent(234);
    m.add_bytes_received(77);
    m.refuse(Refusal::RoomFull);
    m.refuse(Refusal::RoomFull);
    m.refuse(Refusal::RegistryMismatch);
    m.observe_tick(Duration::from_micros(100));
    m.observe_tick(Duration::from_millis(3));
    m.observe_tick(Duration::from_secs(2));
    m.set_room(
        &RoomId::new("lobby").unwrap(),
        RoomFigures {
            peers: 3,
            entities: 120,
        },
    );
    m.set_room(
        &RoomId::new("arena-2").unwrap(),
        RoomFigures {
            peers: 2,
            entities: 40,
        },
    );
    m
}

#[test]
fn the_figures_render_as_prometheus_exposition() {
    let m = filled();
    let samples = parse_exposition(&m.render());
    assert_eq!(value(&samples, "theta_rooms", &[]), 2.0);
    assert_eq!(value(&samples, "theta_peers", &[]), 5.0);
    assert_eq!(value(&samples, "theta_draining", &[]), 0.0);
    assert_eq!(value(&samples, "theta_bytes_sent_total", &[]), 1234.0);
    assert_eq!(value(&samples, "theta_bytes_received_total", &[]), 77.0);
    assert_eq!(
        value(&samples, "theta_refusals_total", &[("reason", "room_full")]),
        2.0
    );
    assert_eq!(
        value(
            &samples,
            "theta_refusals_total",
            &[("reason", "registry_mismatch")]
        ),
        1.0
    );
    assert_eq!(
        value(&samples, "theta_refusals_total", &[("reason", "bad_token")]),
        0.0
    );
    // Cumulative buckets: 100 µs in the first, 3 ms from 0.004 up, 2 s only in +Inf.
    assert_eq!(
        value(&samples, "theta_tick_seconds_bucket", &[("le", "0.00025")]),
        1.0
    );
    assert_eq!(
        value(&samples, "theta_tick_seconds_bucket", &[("le", "0.002")]),
        1.0
    );
    assert_eq!(
        value(&samples, "theta_tick_seconds_bucket", &[("le", "0.004")]),
        2.0
    );
    assert_eq!(
        value(&samples, "theta_tick_seconds_bucket", &[("le", "1")]),
        2.0
    );
    assert_eq!(
        value(&samples, "theta_tick_seconds_bucket", &[("le", "+Inf")]),
        3.0
    );
    assert_eq!(value(&samples, "theta_tick_seconds_count", &[]), 3.0);
    let sum = value(&samples, "theta_tick_seconds_sum", &[]);
    assert!((sum - 2.0031).abs() < 1e-9, "{sum}");
    assert_eq!(
        value(&samples, "theta_room_peers", &[("room", "lobby")]),
        3.0
    );
    assert_eq!(
        value(&samples, "theta_room_entities", &[("room", "arena-2")]),
        40.0
    );
    // A closed room's series go.
    m.remove_room(&RoomId::new("lobby").unwrap());
    m.set_draining(true);
    let samples = parse_exposition(&m.render());
    assert!(!samples
        .iter()
        .any(|s| s.labels.iter().any(|(_, v)| v == "lobby")));
    assert_eq!(value(&samples, "theta_draining", &[]), 1.0);
}

#[test]
fn the_parser_refuses_malformed_exposition() {
    // The check above means something only if the parser fails on bad text.
    for bad in [
        "theta_x 1\n",                               // no TYPE
        "# TYPE theta_x gauge\ntheta_x one\n",       // value
        "# TYPE theta_x gauge\ntheta_x{a=1} 1\n",    // unquoted label
        "# TYPE theta_x gauge\ntheta_x{a=\"1\" 1\n", // unclosed labels
        "# TYPE theta_x gauge\ntheta-x 1\n",         // name
        "# TYPE theta_x gauge\ntheta_x 1",           // no final newline
        "# TYPE theta_x kind\ntheta_x 1\n",          // type
    ] {
        let result = std::panic::catch_unwind(|| parse_exposition(bad));
        assert!(result.is_err(), "accepted {bad:?}");
    }
    assert_eq!(
        parse_exposition("# TYPE a counter\na{b=\"x\\\"y\",c=\"\"} 3\n"),
        vec![Sample {
            name: "a".into(),
            labels: vec![("b".into(), "x\"y".into()), ("c".into(), String::new())],
            value: 3.0
        }]
    );
    assert_eq!(escape_label("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
}

/// An HTTP response: status, headers (lower-case names), body.
type Answer = (u16, Vec<(String, String)>, String);

/// What a plain TcpStream gets for `request`; `None` when the server closed the
/// connection without a response.
fn fetch(addr: SocketAddr, request: &[u8]) -> Option<Answer> {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    // The server may close before reading all of an oversized request.
    let _ = stream.write_all(request);
    let mut raw = Vec::new();
    let _ = stream.read_to_end(&mut raw);
    if raw.is_empty() {
        return None;
    }
    let text = String::from_utf8(raw).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    let mut lines = head.split("\r\n");
    let status = lines.next().unwrap();
    assert!(status.starts_with("HTTP/1.1 "), "{status}");
    let code = status[9..12].parse().unwrap();
    let headers = lines
        .map(|l| {
            let (k, v) = l.split_once(':').unwrap();
            (k.to_ascii_lowercase(), v.trim().to_owned())
        })
        .collect();
    Some((code, headers, body.to_owned()))
}

async fn get(addr: SocketAddr, path: &str) -> Answer {
    let request = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n");
    tokio::task::spawn_blocking(move || fetch(addr, request.as_bytes()))
        .await
        .unwrap()
        .expect("a response")
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

#[tokio::test]
async fn the_endpoint_serves_health_and_metrics_over_http() {
    let metrics = Arc::new(filled());
    let server = MetricsServer::bind("127.0.0.1:0".parse().unwrap(), metrics.clone())
        .await
        .unwrap();
    let addr = server.local_addr();
    assert!(addr.ip().is_loopback() && addr.port() != 0);

    let (status, _, body) = get(addr, "/healthz").await;
    assert_eq!((status, body.as_str()), (200, "ok\n"));

    let (status, headers, body) = get(addr, "/metrics").await;
    assert_eq!(status, 200);
    assert_eq!(
        header(&headers, "content-type"),
        Some("text/plain; version=0.0.4; charset=utf-8")
    );
    let samples = parse_exposition(&body);
    assert_eq!(value(&samples, "theta_peers", &[]), 5.0);
    // Figures are read at each request.
    metrics.add_bytes_received(23);
    let (_, _, body) = get(addr, "/metrics").await;
    let samples = parse_exposition(&body);
    assert_eq!(value(&samples, "theta_bytes_received_total", &[]), 100.0);

    metrics.set_draining(true);
    let (status, _, body) = get(addr, "/healthz").await;
    assert_eq!((status, body.as_str()), (503, "draining\n"));

    let (status, _, _) = get(addr, "/").await;
    assert_eq!(status, 404);
    let (status, _, _) = get(addr, "/metrics/../healthz").await;
    assert_eq!(status, 404);
    let post = b"POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc".to_vec();
    let (status, headers, _) = tokio::task::spawn_blocking(move || fetch(addr, &post))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(status, 405);
    assert_eq!(header(&headers, "allow"), Some("GET, HEAD"));

    // A request head past the bound is refused, not buffered.
    let huge = format!(
        "GET /metrics HTTP/1.1\r\nHost: x\r\nX-Pad: {}\r\n\r\n",
        "a".repeat(64 * 1024)
    );
    let answer = tokio::task::spawn_blocking(move || fetch(addr, huge.as_bytes()))
        .await
        .unwrap();
    assert!(
        answer.as_ref().is_none_or(|(status, _, _)| *status == 431),
        "{answer:?}"
    );

    server.shutdown().await;
    let refused = tokio::task::spawn_blocking(move || TcpStream::connect(addr))
        .await
        .unwrap();
    assert!(refused.is_err(), "closed after shutdown");
}

#[tokio::test]
async fn connections_past_the_limit_are_closed_and_the_rest_served() {
    let server = MetricsServer::bind("127.0.0.1:0".parse().unwrap(), Arc::new(Metrics::new()))
        .await
        .unwrap();
    let addr = server.local_addr();
    let idle: Vec<TcpStream> = tokio::task::spawn_blocking(move || {
        (0..MAX_CONNECTIONS)
            .map(|_| TcpStream::connect(addr).unwrap())
            .collect()
    })
    .await
    .unwrap();
    // Accepted in order: this one finds every permit taken.
    let request = b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n";
    let over = tokio::task::spawn_blocking(move || fetch(addr, request))
        .await
        .unwrap();
    assert_eq!(over, None, "closed without an answer");
    drop(idle);
    // Their tasks end when they see the close; then requests are served again.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let answer = tokio::task::spawn_blocking(move || fetch(addr, request))
            .await
            .unwrap();
        if let Some((status, _, body)) = answer {
            assert_eq!((status, body.as_str()), (200, "ok\n"));
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "never served again");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    server.shutdown().await;
}
