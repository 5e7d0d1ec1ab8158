/// Builds the greeting shown by the sample program.
pub fn greeting(name: &str) -> String {
    format!("Hello, {name}!")
}
