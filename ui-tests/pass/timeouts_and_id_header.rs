use tessera::SessionData;

#[derive(SessionData, Default)]
#[session(idle_timeout = "30m", absolute_timeout = "12h", id_header = "X-Session-Id")]
struct Api {
    a: u8,
}

#[derive(SessionData, Default)]
#[session(idle_timeout = "15m", rolling = true, resave = false)]
struct Idle {
    a: u8,
}

#[derive(SessionData, Default)]
#[session(cookie(max_age = "7d"), absolute_timeout = "30d")]
struct RememberedButBounded {
    a: u8,
}

fn main() {}
