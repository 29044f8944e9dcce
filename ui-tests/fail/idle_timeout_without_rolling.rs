use tessera::SessionData;

#[derive(SessionData, Default)]
#[session(idle_timeout = "30m", rolling = false)]
struct Visit {
    views: u64,
}

fn main() {}
