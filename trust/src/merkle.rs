//! The Merkle tree over the log, as RFC 9162 §2.1 defines it (certificate
//! transparency v2), with SHA-256: tree hashes, inclusion proofs (§2.1.3)
//! and consistency proofs (§2.1.4), made in one streaming pass over the
//! leaves and checked without the log.
//!
//! Leaf `i` (0-based) is the log event at position `i + 1`; its leaf input
//! is the event's 32-byte chain hash (BLAKE3, which already commits to the
//! event's bytes and to every event before it). The tree is hashed with
//! SHA-256 as RFC 9162 and C2SP tlog-checkpoint specify, so a third party
//! can check our proofs with any transparency-log verifier.
//!
//! Memory: building never keeps the leaves. A [`Frontier`] keeps one hash
//! per set bit of the leaf count (at most 64), and a proof needs the hashes
//! of at most 2·log2(n) disjoint ranges of leaves, each hashed with its own
//! frontier while the leaves stream past.

use sha2::{Digest, Sha256};
use std::ops::Range;

/// A SHA-256 tree hash.
pub type TreeHash = [u8; 32];

/// MTH({}): the hash of the empty tree.
pub fn empty_root() -> TreeHash {
    Sha256::digest([]).into()
}

/// The leaf hash of one leaf input: SHA-256(0x00 || input).
pub fn leaf_hash(input: &[u8]) -> TreeHash {
    let mut h = Sha256::new();
    h.update([0u8]);
    h.update(input);
    h.finalize().into()
}

/// An interior node: SHA-256(0x01 || left || right).
pub fn node_hash(left: &TreeHash, right: &TreeHash) -> TreeHash {
    let mut h = Sha256::new();
    h.update([1u8]);
    h.update(left);
    h.update(right);
    h.finalize().into()
}

/// The largest power of two smaller than `n` (n > 1).
fn split(n: u64) -> u64 {
    debug_assert!(n > 1);
    1u64 << (63 - (n - 1).leading_zeros())
}

/// The roots of the perfect subtrees a growing list of leaves decomposes
/// into (one per set bit of the count): enough to hash the whole list, and
/// to keep hashing as leaves are added.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Frontier {
    /// (height, hash), leftmost (largest) first.
    nodes: Vec<(u32, TreeHash)>,
    size: u64,
}

impl Frontier {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds the next leaf, given as its leaf hash.
    pub fn push(&mut self, leaf: TreeHash) {
        let mut h = leaf;
        let mut height = 0;
        while let Some(&(top, left)) = self.nodes.last() {
            if top != height {
                break;
            }
            self.nodes.pop();
            h = node_hash(&left, &h);
            height += 1;
        }
        self.nodes.push((height, h));
        self.size += 1;
    }

    /// Leaves added so far.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// MTH of the leaves added so far.
    pub fn root(&self) -> TreeHash {
        let mut it = self.nodes.iter().rev();
        let Some(&(_, mut r)) = it.next() else {
            return empty_root();
        };
        for (_, left) in it {
            r = node_hash(left, &r);
        }
        r
    }
}

/// The leaf ranges whose tree hashes make up the inclusion proof of leaf
/// `index` in a tree of `size` leaves (RFC 9162 §2.1.3.1, PATH), in proof
/// order.
pub fn inclusion_ranges(index: u64, size: u64) -> Vec<Range<u64>> {
    assert!(index < size, "leaf {index} is not in a tree of {size}");
    let mut out = Vec::new();
    fn path(m: u64, lo: u64, hi: u64, out: &mut Vec<Range<u64>>) {
        let n = hi - lo;
        if n <= 1 {
            return;
        }
        let k = split(n);
        if m < k {
            path(m, lo, lo + k, out);
            out.push(lo + k..hi);
        } else {
            path(m - k, lo + k, hi, out);
            out.push(lo..lo + k);
        }
    }
    path(index, 0, size, &mut out);
    out
}

/// The leaf ranges whose tree hashes make up the consistency proof from a
/// tree of `old` leaves to one of `new` (RFC 9162 §2.1.4.1, PROOF), in
/// proof order. Empty when `old` is 0 or equals `new`.
pub fn consistency_ranges(old: u64, new: u64) -> Vec<Range<u64>> {
    assert!(old <= new, "a tree of {old} leaves cannot precede one of {new}");
    let mut out = Vec::new();
    fn subproof(m: u64, lo: u64, hi: u64, whole: bool, out: &mut Vec<Range<u64>>) {
        let n = hi - lo;
        if m == n {
            if !whole {
                out.push(lo..hi);
            }
            return;
        }
        let k = split(n);
        if m <= k {
            subproof(m, lo, lo + k, whole, out);
            out.push(lo + k..hi);
        } else {
            subproof(m - k, lo + k, hi, false, out);
            out.push(lo..lo + k);
        }
    }
    if old > 0 && old < new {
        subproof(old, 0, new, true, &mut out);
    }
    out
}

/// Hashes a tree and, in the same pass, the ranges a proof needs and the
/// roots at chosen sizes: feed it every leaf in order.
#[derive(Debug, Clone)]
pub struct TreeBuilder {
    whole: Frontier,
    /// Ranges wanted, and their hashes once complete.
    ranges: Vec<(Range<u64>, Option<TreeHash>)>,
    /// Ranges sorted by start (they are disjoint), as indices into `ranges`.
    order: Vec<usize>,
    next: usize,
    current: Option<(usize, Frontier)>,
    /// Sizes whose root is wanted, and the root once reached.
    roots: Vec<(u64, Option<TreeHash>)>,
}

impl TreeBuilder {
    /// `ranges` must be disjoint (as any one proof's are).
    pub fn new(ranges: Vec<Range<u64>>, root_sizes: &[u64]) -> Self {
        let mut order: Vec<usize> = (0..ranges.len()).collect();
        order.sort_by_key(|&i| ranges[i].start);
        debug_assert!(order.windows(2).all(|w| ranges[w[0]].end <= ranges[w[1]].start), "disjoint ranges");
        TreeBuilder {
            whole: Frontier::new(),
            ranges: ranges.into_iter().map(|r| (r, None)).collect(),
            order,
            next: 0,
            current: None,
            roots: root_sizes.iter().map(|&s| (s, (s == 0).then(empty_root))).collect(),
        }
    }

    /// Adds the next leaf, given as its leaf input (the chain hash).
    pub fn push_input(&mut self, input: &[u8]) {
        self.push(leaf_hash(input))
    }

    /// Adds the next leaf, given as its leaf hash.
    pub fn push(&mut self, leaf: TreeHash) {
        let index = self.whole.size();
        self.whole.push(leaf);
        if self.current.is_none() {
            if let Some(&i) = self.order.get(self.next) {
                if self.ranges[i].0.start == index {
                    self.current = Some((i, Frontier::new()));
                    self.next += 1;
                }
            }
        }
        if let Some((i, f)) = &mut self.current {
            f.push(leaf);
            if index + 1 == self.ranges[*i].0.end {
                self.ranges[*i].1 = Some(f.root());
                self.current = None;
            }
        }
        let size = self.whole.size();
        for (s, r) in &mut self.roots {
            if *s == size {
                *r = Some(self.whole.root());
            }
        }
    }

    pub fn size(&self) -> u64 {
        self.whole.size()
    }

    /// The root of everything pushed.
    pub fn root(&self) -> TreeHash {
        self.whole.root()
    }

    /// The root at `size`, if that size was asked for and reached.
    pub fn root_at(&self, size: u64) -> Option<TreeHash> {
        self.roots.iter().find(|(s, _)| *s == size).and_then(|(_, r)| *r)
    }

    /// The hashes of the ranges, in the order given; None if the leaves
    /// pushed did not reach them all.
    pub fn range_hashes(&self) -> Option<Vec<TreeHash>> {
        self.ranges.iter().map(|(_, h)| *h).collect()
    }
}

/// Why a proof does not hold.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProofError {
    #[error("leaf index {index} is not in a tree of {size} leaves")]
    IndexOutOfRange { index: u64, size: u64 },
    #[error("the proof has {got} hashes; a proof for these sizes has {expected}")]
    WrongLength { got: usize, expected: usize },
    #[error("the proof does not lead to the checkpoint's root hash")]
    RootMismatch,
    #[error("the old tree ({old} leaves) is larger than the new one ({new})")]
    Shrunk { old: u64, new: u64 },
    #[error("the old root does not match what the proof gives")]
    OldRootMismatch,
}

/// Checks an inclusion proof (RFC 9162 §2.1.3.2).
pub fn verify_inclusion(
    index: u64,
    size: u64,
    leaf: &TreeHash,
    proof: &[TreeHash],
    root: &TreeHash,
) -> Result<(), ProofError> {
    if index >= size {
        return Err(ProofError::IndexOutOfRange { index, size });
    }
    let expected = inclusion_ranges(index, size).len();
    if proof.len() != expected {
        return Err(ProofError::WrongLength { got: proof.len(), expected });
    }
    let (mut f, mut s) = (index, size - 1);
    let mut r = *leaf;
    for p in proof {
        if s == 0 {
            return Err(ProofError::WrongLength { got: proof.len(), expected });
        }
        if f & 1 == 1 || f == s {
            r = node_hash(p, &r);
            if f & 1 == 0 {
                while f & 1 == 0 && f != 0 {
                    f >>= 1;
                    s >>= 1;
                }
            }
        } else {
            r = node_hash(&r, p);
        }
        f >>= 1;
        s >>= 1;
    }
    if s != 0 || r != *root {
        return Err(ProofError::RootMismatch);
    }
    Ok(())
}

/// Checks a consistency proof (RFC 9162 §2.1.4.2): the tree of `new`
/// leaves with root `new_root` extends the tree of `old` leaves with root
/// `old_root`.
pub fn verify_consistency(
    old: u64,
    new: u64,
    proof: &[TreeHash],
    old_root: &TreeHash,
    new_root: &TreeHash,
) -> Result<(), ProofError> {
    if old > new {
        return Err(ProofError::Shrunk { old, new });
    }
    let expected = consistency_ranges(old, new).len();
    if proof.len() != expected {
        return Err(ProofError::WrongLength { got: proof.len(), expected });
    }
    if old == new {
        return if old_root == new_root { Ok(()) } else { Err(ProofError::RootMismatch) };
    }
    if old == 0 {
        // The empty tree is a prefix of every tree.
        return if *old_root == empty_root() { Ok(()) } else { Err(ProofError::OldRootMismatch) };
    }
    let mut path: Vec<TreeHash> = Vec::with_capacity(proof.len() + 1);
    if old.is_power_of_two() {
        path.push(*old_root);
    }
    path.extend_from_slice(proof);
    let (mut f, mut s) = (old - 1, new - 1);
    while f & 1 == 1 {
        f >>= 1;
        s >>= 1;
    }
    let mut fr = path[0];
    let mut sr = path[0];
    for c in &path[1..] {
        if s == 0 {
            return Err(ProofError::WrongLength { got: proof.len(), expected });
        }
        if f & 1 == 1 || f == s {
            fr = node_hash(c, &fr);
            sr = node_hash(c, &sr);
            if f & 1 == 0 {
                while f & 1 == 0 && f != 0 {
                    f >>= 1;
                    s >>= 1;
                }
            }
        } else {
            sr = node_hash(&sr, c);
        }
        f >>= 1;
        s >>= 1;
    }
    if fr != *old_root {
        return Err(ProofError::OldRootMismatch);
    }
    if sr != *new_root || s != 0 {
        return Err(ProofError::RootMismatch);
    }
    Ok(())
}

/// The tree hash of a list of leaf hashes by the RFC's recursive
/// definition, for tests and small lists.
pub fn mth(leaves: &[TreeHash]) -> TreeHash {
    match leaves.len() {
        0 => empty_root(),
        1 => leaves[0],
        n => {
            let k = split(n as u64) as usize;
            node_hash(&mth(&leaves[..k]), &mth(&leaves[k..]))
        }
    }
}

/// Builds a proof from leaf hashes held in memory (tests, small logs).
pub fn proof_in_memory(ranges: &[Range<u64>], leaves: &[TreeHash]) -> Vec<TreeHash> {
    ranges.iter().map(|r| mth(&leaves[r.start as usize..r.end as usize])).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn leaves(n: u64) -> Vec<TreeHash> {
        (0..n).map(|i| leaf_hash(&i.to_be_bytes())).collect()
    }

    #[test]
    fn frontier_matches_the_recursive_definition() {
        let ls = leaves(70);
        let mut f = Frontier::new();
        assert_eq!(f.root(), mth(&[]));
        for (i, l) in ls.iter().enumerate() {
            f.push(*l);
            assert_eq!(f.root(), mth(&ls[..=i]), "size {}", i + 1);
        }
    }

    #[test]
    fn every_inclusion_and_consistency_proof_of_small_trees_verifies() {
        let ls = leaves(40);
        for n in 1..=40u64 {
            let root = mth(&ls[..n as usize]);
            for i in 0..n {
                let ranges = inclusion_ranges(i, n);
                let mut b = TreeBuilder::new(ranges.clone(), &[]);
                ls[..n as usize].iter().for_each(|l| b.push(*l));
                let proof = b.range_hashes().unwrap();
                assert_eq!(proof, proof_in_memory(&ranges, &ls));
                verify_inclusion(i, n, &ls[i as usize], &proof, &root).unwrap();
                let wrong = leaf_hash(b"other");
                assert!(verify_inclusion(i, n, &wrong, &proof, &root).is_err());
            }
            for m in 0..=n {
                let ranges = consistency_ranges(m, n);
                let mut b = TreeBuilder::new(ranges.clone(), &[m, n]);
                ls[..n as usize].iter().for_each(|l| b.push(*l));
                let proof = b.range_hashes().unwrap();
                let old = b.root_at(m).unwrap();
                assert_eq!(old, mth(&ls[..m as usize]));
                verify_consistency(m, n, &proof, &old, &root).unwrap_or_else(|e| panic!("{m} -> {n}: {e}"));
                if m > 0 && m < n {
                    let mut other = ls[..n as usize].to_vec();
                    other[(m - 1) as usize] = leaf_hash(b"rewritten");
                    let other_root = mth(&other);
                    let other_proof = proof_in_memory(&ranges, &other);
                    assert!(verify_consistency(m, n, &other_proof, &old, &other_root).is_err(), "{m} -> {n}");
                }
            }
        }
    }

    #[test]
    fn known_answers() {
        // RFC 9162 / RFC 6962: the empty tree and a one-leaf tree over "".
        assert_eq!(hex::encode(empty_root()), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
        assert_eq!(hex::encode(leaf_hash(b"")), "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d");
    }
}
