use tessera::SessionData;

#[derive(SessionData, Default)]
#[session(idle_timeout = 1800)]
struct Visit {
    views: u64,
}

fn main() {}
