//! One account's actor tree as a unit of teardown, on a shared pool of arbiters.
//!
//! Accounts no longer own a thread each, so stopping a thread cannot tear a crashed tree
//! down. Instead every actor of the tree (Account, DecisionActor, ExecutionActor) holds
//! a [`TreeGuard`] and [`Tree::watch`]es the tree: the moment any member ends — a stop
//! or a panic (the guard drops while the panicking task unwinds) — the tree is
//! cancelled and every other member stops, which drops every future it spawned (a live
//! account's user data stream with its socket included). The Supervisor sees the
//! Account's address disconnect and restarts a fresh tree after its backoff; nothing of
//! the old one is left running meanwhile.
//!
//! Entry points: [`Tree::new`], [`Tree::guard`], [`Tree::watch`], [`Tree::cancel`],
//! [`Tree::is_cancelled`].

use actix::prelude::*;
use std::sync::Arc;
use tokio::sync::watch;

/// The cancellation signal shared by one account tree.
#[derive(Clone, Debug)]
pub struct Tree {
    tx: Arc<watch::Sender<bool>>,
}

impl Default for Tree {
    fn default() -> Self {
        Self::new()
    }
}

impl Tree {
    /// A live tree.
    pub fn new() -> Tree {
        let (tx, _) = watch::channel(false);
        Tree { tx: Arc::new(tx) }
    }

    /// Cancels the tree: every watching actor stops.
    pub fn cancel(&self) {
        self.tx.send_replace(true);
    }

    /// True once the tree was cancelled.
    pub fn is_cancelled(&self) -> bool {
        *self.tx.borrow()
    }

    /// A guard that cancels the tree when its holder is dropped (stopped or panicked).
    pub fn guard(&self) -> TreeGuard {
        TreeGuard(self.clone())
    }

    /// Resolves once the tree is cancelled.
    pub async fn cancelled(&self) {
        let mut rx = self.tx.subscribe();
        // An error means the sender is gone, which cannot happen while `self` holds it.
        let _ = rx.wait_for(|cancelled| *cancelled).await;
    }

    /// Stops the actor of `ctx` when the tree is cancelled.
    pub fn watch<A>(&self, act: &A, ctx: &mut Context<A>)
    where
        A: Actor<Context = Context<A>>,
    {
        let tree = self.clone();
        let wait = async move { tree.cancelled().await };
        ctx.spawn(wait.into_actor(act).map(|_, _, ctx| ctx.stop()));
    }
}

/// Held by every actor of a tree; its drop (the actor stopped or panicked) cancels the
/// tree.
#[derive(Debug)]
pub struct TreeGuard(Tree);

impl TreeGuard {
    /// The tree it guards.
    pub fn tree(&self) -> &Tree {
        &self.0
    }
}

impl Drop for TreeGuard {
    fn drop(&mut self) {
        self.0.cancel();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    struct Member {
        guard: TreeGuard,
        panic_on_poke: bool,
    }

    impl Actor for Member {
        type Context = Context<Self>;
        fn started(&mut self, ctx: &mut Self::Context) {
            let tree = self.guard.tree().clone();
            tree.watch(self, ctx);
        }
    }

    #[derive(Message)]
    #[rtype(result = "()")]
    struct Poke;

    impl Handler<Poke> for Member {
        type Result = ();
        fn handle(&mut self, _: Poke, _: &mut Self::Context) {
            if self.panic_on_poke {
                panic!("injected");
            }
        }
    }

    #[actix_rt::test]
    async fn a_panicking_member_stops_every_other_member_of_its_tree_and_no_other_tree() {
        let tree = Tree::new();
        let other = Tree::new();
        let crashing = Member {
            guard: tree.guard(),
            panic_on_poke: true,
        }
        .start();
        let sibling = Member {
            guard: tree.guard(),
            panic_on_poke: false,
        }
        .start();
        let stranger = Member {
            guard: other.guard(),
            panic_on_poke: false,
        }
        .start();
        crashing.do_send(Poke);
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while sibling.connected() && std::time::Instant::now() < deadline {
            actix_rt::time::sleep(Duration::from_millis(10)).await;
        }
        assert!(tree.is_cancelled());
        assert!(!crashing.connected(), "the panicking member is gone");
        assert!(!sibling.connected(), "its sibling stopped with it");
        assert!(stranger.connected(), "another tree is untouched");
        assert!(!other.is_cancelled());
    }
}
