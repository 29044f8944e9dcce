use tessera::SessionData;

#[derive(SessionData, Default)]
#[session(absolute_timeout = "0s")]
struct Visit {
    views: u64,
}

fn main() {}
