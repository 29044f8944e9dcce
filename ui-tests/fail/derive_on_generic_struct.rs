use tessera::SessionData;

#[derive(SessionData, Default)]
struct Visit<T> {
    views: T,
}

fn main() {}
