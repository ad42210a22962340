//! The settings file the image ships (deploy/docker/settings.toml) is one the service accepts: a
//! typo there would only show as a pod that never starts.

use std::path::Path;
use trdscreen::settings::Settings;

#[test]
fn the_images_settings_file_loads_and_listens_on_every_interface() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/docker/settings.toml");
    let settings = Settings::load(Some(&path), &|_| None).expect("the image's settings load");
    assert_eq!(settings.grpc.listen.to_string(), "0.0.0.0:50051");
    assert_eq!(
        settings
            .telemetry
            .metrics_listen
            .map(|a| a.to_string())
            .as_deref(),
        Some("0.0.0.0:9464")
    );
}
