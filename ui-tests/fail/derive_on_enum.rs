use tessera::SessionData;

#[derive(SessionData)]
enum Visit {
    Anonymous,
    User(String),
}

fn main() {}
