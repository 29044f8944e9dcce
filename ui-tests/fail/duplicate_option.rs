use tessera::SessionData;

#[derive(SessionData, Default)]
#[session(resave = false, resave = true)]
struct Visit {
    views: u64,
}

fn main() {}
