//! Inputs shared by the trainer's integration tests.
#![allow(dead_code)]

use std::path::PathBuf;

use train::{Group, Response};

/// A tiny model fixture (`tests/fixtures/models/<name>`, found by the `testdata` crate) and the
/// model loaded from it. A missing fixture panics naming the path.
pub fn fixture_model(name: &str) -> (PathBuf, model::LoadedModel) {
    let d = testdata::model_dir(name);
    let m = model::load(d.to_str().unwrap(), &model::LoadOptions::default()).expect("load");
    (d, m)
}

/// One response with its reward.
pub fn resp(ids: &[u32], reward: f32) -> Response {
    Response {
        ids: ids.to_vec(),
        reward,
        ..Default::default()
    }
}

/// Two groups with prompts and responses of different lengths (so micro-batches pad on
/// both sides); `shift` changes one prompt token, `second` is the first token id of the
/// second group's responses (keep it inside the test model's vocabulary).
pub fn groups_from(shift: u32, second: u32) -> Vec<Group> {
    vec![
        Group {
            prompt: vec![1, 40 + shift, 41, 42, 43, 44, 45],
            responses: vec![
                resp(&[50, 51, 52, 2], 1.0),
                resp(&[60, 61], 0.0),
                resp(&[70, 71, 72, 73, 74, 75], 0.5),
            ],
        },
        Group {
            prompt: vec![1, 90, 91 + shift],
            responses: vec![
                resp(
                    &[second, second + 1, second + 2, second + 3, second + 4],
                    0.0,
                ),
                resp(&[second + 10], 1.0),
                resp(&[second + 20, second + 21, second + 22], 1.0),
            ],
        },
    ]
}
