use tessera::SessionData;

#[derive(SessionData, Default)]
#[session(idle_timeout = "2h", absolute_timeout = "30m")]
struct Visit {
    views: u64,
}

fn main() {}
