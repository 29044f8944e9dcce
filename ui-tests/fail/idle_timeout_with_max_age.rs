use tessera::SessionData;

#[derive(SessionData, Default)]
#[session(idle_timeout = "30m", cookie(max_age = "1h"))]
struct Visit {
    views: u64,
}

fn main() {}
