use trellis_config::Config;

pub fn cloudformation(_config: &Config) -> String {
    String::new()
}
