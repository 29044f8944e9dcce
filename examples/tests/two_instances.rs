//! Two `express_compat` processes on one shared store, as two app instances behind a
//! load balancer: a login on one is seen on the other, 64 simultaneous writes split
//! across both all survive, a logout on one is seen on the other, and an id rotation
//! racing a logout never brings the session back.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::thread;

use serde_json::Value;
use support::{Server, get, pair, start};

/// Two instances sharing the store named by `store_flags`.
struct Fleet {
    _servers: [Server; 2],
    ports: [u16; 2],
}

impl Fleet {
    fn start(store_flags: &[String]) -> Self {
        let mut args: Vec<&str> = vec!["--port", "0", "--secret", "keyboard cat"];
        args.extend(store_flags.iter().map(String::as_str));
        let (a, pa) = start(&args);
        let (b, pb) = start(&args);
        Self {
            _servers: [a, b],
            ports: [pa, pb],
        }
    }
}

fn json(body: &str) -> Value {
    serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {body}"))
}

/// Logs in on instance 0 and returns the cookie.
fn login(fleet: &Fleet) -> String {
    let (status, cookies, body) = get(fleet.ports[0], "/set?user=alice&views=1", None);
    assert_eq!(status, 200, "{body}");
    pair(cookies.first().expect("a session cookie"))
}

fn a_login_on_one_instance_is_seen_on_the_other(fleet: &Fleet) {
    let cookie = login(fleet);
    let (_, _, body) = get(fleet.ports[1], "/get", Some(&cookie));
    assert_eq!(json(&body)["user"], "alice", "{body}");
}

fn simultaneous_writes_across_both_instances_all_survive(fleet: &Fleet) {
    let cookie = login(fleet);
    let threads: Vec<_> = (0..64)
        .map(|i| {
            let (port, cookie) = (fleet.ports[i % 2], cookie.clone());
            thread::spawn(move || get(port, &format!("/set?k{i}={i}"), Some(&cookie)).0)
        })
        .collect();
    for t in threads {
        assert_eq!(t.join().unwrap(), 200);
    }
    let (_, _, body) = get(fleet.ports[1], "/get", Some(&cookie));
    let data = json(&body);
    let kept = (0..64).filter(|i| data[format!("k{i}")] == *i).count();
    assert_eq!(kept, 64, "{body}");
    assert_eq!(data["user"], "alice");
}

fn a_logout_on_one_instance_is_seen_on_the_other(fleet: &Fleet) {
    let cookie = login(fleet);
    let (status, _, _) = get(fleet.ports[1], "/destroy", Some(&cookie));
    assert_eq!(status, 200);
    let (_, _, body) = get(fleet.ports[0], "/get", Some(&cookie));
    assert_eq!(json(&body), serde_json::json!({}), "logged out everywhere");
}

fn a_rotation_racing_a_logout_never_resurrects_the_session(fleet: &Fleet) {
    // In order: a logout on one instance, then a rotation with the same (old) cookie on
    // the other, finds nothing to move.
    let cookie = login(fleet);
    get(fleet.ports[1], "/destroy", Some(&cookie));
    let (_, _, body) = get(fleet.ports[0], "/rotate", Some(&cookie));
    let (_, cookies, _) = get(fleet.ports[0], "/get", Some(&cookie));
    assert!(cookies.is_empty(), "{cookies:?}");
    assert!(!body.contains("alice"), "{body}");
    // At the same moment, many times: the old id never answers again, and alice's session
    // lives on under the new id only when the rotation moved it before the logout.
    for round in 0..20 {
        let cookie = login(fleet);
        let (p0, p1) = (fleet.ports[0], fleet.ports[1]);
        let (c0, c1) = (cookie.clone(), cookie.clone());
        let rotate = thread::spawn(move || get(p0, "/rotate", Some(&c0)));
        let logout = thread::spawn(move || get(p1, "/destroy", Some(&c1)));
        let (status, cookies, body) = rotate.join().unwrap();
        logout.join().unwrap();
        let (_, _, old) = get(p1, "/get", Some(&cookie));
        assert!(
            !old.contains("alice"),
            "round {round}: the old id is live: {old}"
        );
        match status {
            200 => {
                // Either the rotation moved the session first (the logout, with the old
                // id, then found nothing), or the logout came before the rotating request
                // loaded it, which then rotated a fresh, empty session.
                let new = pair(cookies.first().expect("the rotated cookie"));
                let (_, _, data) = get(p1, "/get", Some(&new));
                let data = json(&data);
                assert!(
                    data["user"] == "alice" || data == serde_json::json!({}),
                    "round {round}: {body} {data}"
                );
            }
            409 => assert!(
                cookies
                    .iter()
                    .all(|c| c.contains("Expires=Thu, 01 Jan 1970")),
                "round {round}: a gone session sends no live cookie: {cookies:?}"
            ),
            other => panic!("round {round}: /rotate answered {other}: {body}"),
        }
    }
}

fn run_fleet_checks(store_flags: &[String]) {
    let fleet = Fleet::start(store_flags);
    a_login_on_one_instance_is_seen_on_the_other(&fleet);
    simultaneous_writes_across_both_instances_all_survive(&fleet);
    a_logout_on_one_instance_is_seen_on_the_other(&fleet);
    a_rotation_racing_a_logout_never_resurrects_the_session(&fleet);
}

#[test]
fn two_instances_share_sessions_on_postgres() {
    let test = "two_instances_share_sessions_on_postgres";
    let url = support::database_url();
    let addr = url
        .split('@')
        .nth(1)
        .and_then(|rest| rest.split('/').next())
        .unwrap_or_default()
        .to_owned();
    if std::net::TcpStream::connect(&addr).is_err() {
        support::unavailable(test, &format!("PostgreSQL at {url} is not reachable"));
        return;
    }
    let table = support::unique("tessera_fleet_");
    run_fleet_checks(&[
        "--store".into(),
        "pg".into(),
        "--pg-url".into(),
        url.clone(),
        "--table".into(),
        table.clone(),
    ]);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
            .await
            .unwrap();
        tokio::spawn(connection);
        client
            .batch_execute(&format!("DROP TABLE IF EXISTS \"{table}\""))
            .await
            .unwrap();
    });
}

#[test]
fn two_instances_share_sessions_on_redis() {
    let test = "two_instances_share_sessions_on_redis";
    let url = support::redis_url();
    let addr = url
        .trim_start_matches("redis://")
        .split('/')
        .next()
        .unwrap_or_default()
        .to_owned();
    if std::net::TcpStream::connect(&addr).is_err() {
        support::unavailable(test, &format!("Redis at {url} is not reachable"));
        return;
    }
    let prefix = format!("{}:", support::unique("tessera-fleet-"));
    run_fleet_checks(&[
        "--store".into(),
        "redis".into(),
        "--redis-url".into(),
        url,
        "--prefix".into(),
        prefix,
    ]);
}
