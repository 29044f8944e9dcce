use tessera::SessionData;

#[derive(SessionData, Default)]
#[session(secret = "keyboard cat")]
struct Visit {
    views: u64,
}

fn main() {}
