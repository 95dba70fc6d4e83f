//! The remote services a build uses: a REAPI action cache asked before, and told after,
//! each step (see `cmod_remote`), held to the command's trust policy.

use cmod_reapi::{Endpoint, HEADERS_ENV};
use cmod_remote::ReapiCache;
use cmod_store::realise::StepCacheUse;
use cmod_store::substitute::{RemoteCacheSetting, Sharing};
use cmod_store::transfer::Trust;
use cmod_store::Store;

use crate::OpsError;

/// A build's remote cache and the trust its answers are held to.
#[derive(Debug)]
pub struct RemoteCache {
    cache: ReapiCache,
    trust: Trust,
    url: String,
    signs: bool,
}

impl RemoteCache {
    /// What the realiser takes.
    pub fn step_cache(&self) -> StepCacheUse<'_> {
        StepCacheUse {
            cache: &self.cache,
            trust: &self.trust,
        }
    }

    /// What to tell the user before building: a machine that signs nothing shares
    /// nothing (the realiser publishes only signed results).
    pub fn unshared_note(&self) -> Option<String> {
        (!self.signs).then(|| {
            format!(
                "steps built here are not shared with the remote cache `{}`: this machine signs nothing (add `secret-key-files` under [cache] in the user configuration to share them)",
                self.url
            )
        })
    }
}

/// The remote cache `sharing` names, if any, for building into `store`. A malformed URL
/// or header (in `$CMOD_REMOTE_HEADERS`) is a usage error; an unreachable server is not
/// (the build warns and goes on locally).
pub fn remote_cache(
    sharing: Option<&Sharing>,
    store: &Store,
) -> Result<Option<RemoteCache>, OpsError> {
    let Some((setting, sharing)) = sharing.and_then(|s| Some((s.remote_cache.as_ref()?, s))) else {
        return Ok(None);
    };
    let endpoint = endpoint(setting)?;
    Ok(Some(RemoteCache {
        cache: ReapiCache::new(endpoint, store),
        trust: sharing.trust.clone(),
        url: setting.url.clone(),
        signs: !sharing.signing.is_empty(),
    }))
}

fn endpoint(setting: &RemoteCacheSetting) -> Result<Endpoint, OpsError> {
    let help = || {
        Some(format!(
            "give --remote-cache grpc://HOST:PORT (or grpcs://HOST[:PORT]) and headers as `name=value` pairs in ${HEADERS_ENV}"
        ))
    };
    Endpoint::parse(&setting.url)
        .and_then(|e| e.with_headers_from_env(HEADERS_ENV))
        .map(|e| e.with_instance_name(setting.instance_name.clone()))
        .map_err(|e| OpsError::usage(format!("the remote cache: {e}"), help()))
}
