//! placeholder: logprobs
