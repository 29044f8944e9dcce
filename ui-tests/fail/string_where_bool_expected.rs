use tessera::SessionData;

#[derive(SessionData, Default)]
#[session(save_uninitialized = "false")]
struct Visit {
    views: u64,
}

fn main() {}
