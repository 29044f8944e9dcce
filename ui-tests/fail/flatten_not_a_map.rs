use tessera::SessionData;

#[derive(SessionData, Default)]
struct Visit {
    #[session(flatten)]
    rest: Vec<String>,
}

fn main() {}
