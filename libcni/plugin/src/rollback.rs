//! Undo on failure. A plugin whose ADD fails must leave nothing behind
//! (spec: a delegate that succeeded is undone before failing), and ADD
//! fails by `?` anywhere, or by a panic that unwinds. So every step that
//! changes the host hands back a guard whose undo runs on drop unless the
//! ADD gets to `commit()` it.
//!
//! - [`Rollback`]: one undo closure.
//! - [`Undo`]: the same, boxed, so guards of different steps have one type.
//! - [`Rollbacks`]: several, undone last first, committed at once.
//! - [`Guarded`]: a value that its undo needs (a socket, a store), reached
//!   through the guard while the step goes on.
//!
//! An undo cannot fail the ADD any more (it runs while an error is on its
//! way out): it logs what it could not undo.

use std::ops::{Deref, DerefMut};

/// Runs its closure on drop unless committed.
#[must_use = "dropping a Rollback undoes the step at once"]
pub struct Rollback<F: FnOnce()> {
    undo: Option<F>,
}

/// A boxed [`Rollback`]: what a step returns when its caller keeps guards
/// of several kinds together.
pub type Undo<'a> = Rollback<Box<dyn FnOnce() + Send + 'a>>;

impl<F: FnOnce()> Rollback<F> {
    pub fn new(undo: F) -> Self {
        Rollback { undo: Some(undo) }
    }

    /// The step is to stay: never undo it.
    pub fn commit(mut self) {
        self.undo = None;
    }
}

impl<'a> Rollback<Box<dyn FnOnce() + Send + 'a>> {
    pub fn boxed(undo: impl FnOnce() + Send + 'a) -> Self {
        Rollback::new(Box::new(undo))
    }
}

impl<F: FnOnce()> Drop for Rollback<F> {
    fn drop(&mut self) {
        if let Some(undo) = self.undo.take() {
            undo();
        }
    }
}

impl<F: FnOnce()> std::fmt::Debug for Rollback<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Rollback")
            .field("armed", &self.undo.is_some())
            .finish()
    }
}

/// Several undos, run last first (the reverse of the steps) on drop unless
/// committed.
#[derive(Debug, Default)]
#[must_use = "dropping Rollbacks undoes their steps at once"]
pub struct Rollbacks<'a> {
    steps: Vec<Undo<'a>>,
}

impl<'a> Rollbacks<'a> {
    pub fn new() -> Self {
        Rollbacks { steps: Vec::new() }
    }

    pub fn push(&mut self, step: Undo<'a>) {
        self.steps.push(step);
    }

    /// Every step is to stay.
    pub fn commit(mut self) {
        for step in self.steps.drain(..) {
            step.commit();
        }
    }
}

impl Drop for Rollbacks<'_> {
    fn drop(&mut self) {
        while let Some(step) = self.steps.pop() {
            drop(step);
        }
    }
}

/// A value with its undo: derefs to the value, and unless committed runs
/// `undo(&mut value)` on drop.
#[must_use = "dropping a Guarded undoes the step at once"]
pub struct Guarded<T, F: FnOnce(&mut T)> {
    value: T,
    undo: Option<F>,
}

impl<T, F: FnOnce(&mut T)> Guarded<T, F> {
    pub fn new(value: T, undo: F) -> Self {
        Guarded {
            value,
            undo: Some(undo),
        }
    }

    /// The step is to stay: never undo it.
    pub fn commit(mut self) {
        self.undo = None;
    }
}

impl<T, F: FnOnce(&mut T)> Deref for Guarded<T, F> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.value
    }
}

impl<T, F: FnOnce(&mut T)> DerefMut for Guarded<T, F> {
    fn deref_mut(&mut self) -> &mut T {
        &mut self.value
    }
}

impl<T, F: FnOnce(&mut T)> Drop for Guarded<T, F> {
    fn drop(&mut self) {
        if let Some(undo) = self.undo.take() {
            undo(&mut self.value);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::RefCell;

    #[test]
    fn undoes_on_drop_unless_committed() {
        let log = RefCell::new(Vec::new());
        drop(Rollback::new(|| log.borrow_mut().push("undone")));
        Rollback::new(|| log.borrow_mut().push("committed")).commit();
        assert_eq!(*log.borrow(), ["undone"]);
    }

    #[test]
    fn undoes_when_unwinding() {
        let log = std::sync::Mutex::new(Vec::new());
        let res = std::panic::catch_unwind(|| {
            let _g = Rollback::new(|| log.lock().unwrap().push("undone"));
            panic!("step failed");
        });
        assert!(res.is_err());
        assert_eq!(*log.lock().unwrap(), ["undone"]);
    }

    #[test]
    fn a_list_undoes_last_first_and_commits_all() {
        let log = std::sync::Mutex::new(Vec::new());
        let mut all = Rollbacks::new();
        for step in ["veth", "lease", "rules"] {
            let log = &log;
            all.push(Undo::boxed(move || log.lock().unwrap().push(step)));
        }
        drop(all);
        assert_eq!(*log.lock().unwrap(), ["rules", "lease", "veth"]);

        let mut kept = Rollbacks::new();
        kept.push(Undo::boxed(|| log.lock().unwrap().push("kept")));
        kept.commit();
        assert_eq!(log.lock().unwrap().len(), 3);
    }

    #[test]
    fn guarded_value_is_usable_and_handed_to_its_undo() {
        let mut released = Vec::new();
        {
            let mut taken = Guarded::new(Vec::new(), |t: &mut Vec<u32>| {
                released.append(t);
            });
            taken.push(1);
            taken.push(2);
            assert_eq!(taken.len(), 2);
        }
        assert_eq!(released, [1, 2]);
        let mut kept = Guarded::new(0, |_: &mut u32| panic!("must not run"));
        *kept += 1;
        kept.commit();
    }
}
