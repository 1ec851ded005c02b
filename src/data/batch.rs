//! From encoded texts to batches of tensors on a device.
//!
//! Texts are tokenised once into an [`Encoded`] set; [`Batches`] then walks it
//! in order or in a seeded shuffle and pads each batch either to `max_len`
//! (what the seed notebook did) or to the longest text of the batch, which
//! saves work whenever texts are shorter than `max_len`.
use crate::error::{Error, Result};
use rand::SeedableRng;
use rand::seq::SliceRandom;
use serde::{Deserialize, Serialize};
use tch::{Device, Tensor};

/// A tokenised dataset: one unpadded id sequence per text (with special
/// tokens, already truncated to `max_len`).
#[derive(Debug, Clone, PartialEq)]
pub struct Encoded {
    /// Token ids per text.
    pub ids: Vec<Vec<i64>>,
    /// Token type (segment) ids per text.
    pub type_ids: Vec<Vec<i64>>,
    /// Label id per text.
    pub targets: Vec<i64>,
    /// The id written into padded positions.
    pub pad_id: i64,
    /// The truncation length used.
    pub max_len: usize,
}

/// How a batch is padded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Padding {
    /// Every batch is `max_len` wide (the seed notebook's behaviour).
    MaxLen,
    /// Each batch is as wide as its longest text.
    #[default]
    Dynamic,
    /// As [`Padding::Dynamic`], and texts of similar length are batched
    /// together (Hugging Face's `group_by_length`): the (shuffled) order is
    /// cut into windows of [`BUCKET_WINDOW`] batches and each window is
    /// sorted by length, longest first. Without a shuffle (evaluation) the
    /// whole set is one window. Worth most when `max_len` is long (512) and
    /// text lengths vary: little padding is left to compute on.
    Bucketed,
}

impl std::str::FromStr for Padding {
    type Err = Error;
    /// `max` / `max_len`, `dynamic`, or `bucketed`.
    ///
    /// ```
    /// use encoder_bench::data::Padding;
    /// assert_eq!("bucketed".parse::<Padding>().unwrap(), Padding::Bucketed);
    /// assert!("longest".parse::<Padding>().is_err());
    /// ```
    fn from_str(s: &str) -> Result<Self> {
        match s.to_ascii_lowercase().as_str() {
            "max" | "max_len" | "max-len" => Ok(Padding::MaxLen),
            "dynamic" => Ok(Padding::Dynamic),
            "bucketed" | "bucket" => Ok(Padding::Bucketed),
            other => Err(Error::invalid(
                "padding",
                format!(
                    "`{other}`: expected `max` (pad to max_len, as the seed), `dynamic` (to the longest text of each batch) or `bucketed` (dynamic, with texts of similar length batched together)"
                ),
            )),
        }
    }
}

/// Batches per length-sorting window of [`Padding::Bucketed`] (HF's
/// `mega_batch_mult`): wide enough for batches of even width, narrow enough
/// that training order stays random at the scale of an epoch.
pub const BUCKET_WINDOW: usize = 50;

impl Padding {
    /// `"max_len"`, `"dynamic"` or `"bucketed"` (the serde names).
    pub fn as_str(self) -> &'static str {
        match self {
            Padding::MaxLen => "max_len",
            Padding::Dynamic => "dynamic",
            Padding::Bucketed => "bucketed",
        }
    }
}

/// One batch: `[batch, seq]` i64 tensors plus `[batch]` targets.
#[derive(Debug)]
pub struct Batch {
    /// Token ids.
    pub ids: Tensor,
    /// 1 for real tokens, 0 for padding.
    pub mask: Tensor,
    /// Segment ids.
    pub token_type_ids: Tensor,
    /// Label ids.
    pub targets: Tensor,
    /// Position in the [`Encoded`] set of each row (batches of
    /// [`Padding::Bucketed`] or shuffled order are not in dataset order).
    pub indices: Vec<usize>,
}

impl Batch {
    /// Number of examples.
    pub fn size(&self) -> i64 {
        self.ids.size()[0]
    }
}

/// `values` as an int64 tensor of `shape` on `device`, through the crate's
/// one transfer ([`crate::device::to_device`]). Integer tensors pass every
/// device rule (and [`Encoded::batches`] checks the device first), so what
/// is left to fail is libtorch's copy itself, out of device memory, which an
/// iterator of batches cannot return: it stops the program with libtorch's
/// message, as a failed allocation in the forward pass does.
pub(crate) fn int64_on(values: &[i64], shape: &[i64], device: Device) -> Tensor {
    crate::device::to_device(&Tensor::from_slice(values).view(shape), device).unwrap_or_else(|e| panic!("{e}"))
}

impl Encoded {
    /// Number of texts.
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    /// A fingerprint of the token ids, type ids, targets and shape (FNV-1a,
    /// hex): the same set encodes to the same string on any machine, so a
    /// resumed run can tell that it is given the data it started with.
    ///
    /// ```
    /// let e = encoder_bench::data::Encoded { ids: vec![vec![101, 7, 102]], type_ids: vec![vec![0, 0, 0]], targets: vec![1], pad_id: 0, max_len: 8 };
    /// let mut f = e.clone();
    /// f.targets[0] = 2;
    /// assert_ne!(e.fingerprint(), f.fingerprint());
    /// ```
    pub fn fingerprint(&self) -> String {
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        let mut eat = |v: i64| {
            for b in v.to_le_bytes() {
                h ^= u64::from(b);
                h = h.wrapping_mul(0x0100_0000_01b3);
            }
        };
        eat(self.max_len as i64);
        eat(self.pad_id);
        for ((ids, types), &t) in self.ids.iter().zip(&self.type_ids).zip(&self.targets) {
            eat(ids.len() as i64);
            ids.iter().chain(types).for_each(|&v| eat(v));
            eat(t);
        }
        format!("{h:016x}-{}", self.len())
    }

    /// Total real (non-padding) tokens, for throughput and FLOP counts.
    pub fn num_tokens(&self) -> usize {
        self.ids.iter().map(Vec::len).sum()
    }

    /// The examples at `indices` as one batch on `device`.
    pub fn batch(&self, indices: &[usize], padding: Padding, device: Device) -> Batch {
        let width = self.width(indices, padding);
        let n = indices.len();
        let mut ids = vec![self.pad_id; n * width];
        let mut mask = vec![0i64; n * width];
        let mut types = vec![0i64; n * width];
        for (row, &i) in indices.iter().enumerate() {
            let len = self.ids[i].len().min(width);
            let at = row * width;
            ids[at..at + len].copy_from_slice(&self.ids[i][..len]);
            types[at..at + len].copy_from_slice(&self.type_ids[i][..len]);
            mask[at..at + len].fill(1);
        }
        let targets: Vec<i64> = indices.iter().map(|&i| self.targets[i]).collect();
        let shape = [n as i64, width as i64];
        let put = |v: &[i64]| int64_on(v, &shape, device);
        Batch {
            ids: put(&ids),
            mask: put(&mask),
            token_type_ids: put(&types),
            targets: int64_on(&targets, &[n as i64], device),
            indices: indices.to_vec(),
        }
    }

    /// The padded width of a batch of the examples at `indices`.
    pub fn width(&self, indices: &[usize], padding: Padding) -> usize {
        match padding {
            Padding::MaxLen => self.max_len,
            Padding::Dynamic | Padding::Bucketed => indices.iter().map(|&i| self.ids[i].len()).max().unwrap_or(0),
        }
    }

    /// The example order [`Encoded::batches`] walks: identity, a seeded
    /// permutation, and for [`Padding::Bucketed`] sorted by length within
    /// windows of [`BUCKET_WINDOW`] batches (stable, so equal lengths keep
    /// their shuffled order).
    pub fn batch_order(&self, batch_size: usize, padding: Padding, shuffle: Option<u64>) -> Vec<usize> {
        let mut order: Vec<usize> = (0..self.len()).collect();
        if let Some(seed) = shuffle {
            order.shuffle(&mut rand_chacha::ChaCha8Rng::seed_from_u64(seed));
        }
        if padding == Padding::Bucketed {
            let window = if shuffle.is_some() { batch_size.max(1) * BUCKET_WINDOW } else { order.len().max(1) };
            for w in order.chunks_mut(window) {
                w.sort_by_key(|&i| std::cmp::Reverse(self.ids[i].len()));
            }
        }
        order
    }

    /// The padded width of every batch [`Encoded::batches`] would build.
    pub fn batch_widths(&self, batch_size: usize, padding: Padding, shuffle: Option<u64>) -> Vec<usize> {
        self.batch_order(batch_size, padding, shuffle).chunks(batch_size.max(1)).map(|c| self.width(c, padding)).collect()
    }

    /// Iterates over batches of `batch_size` (the last one may be smaller).
    /// With `shuffle = Some(seed)` the order is a seeded permutation, so the
    /// same seed gives the same batches on every platform.
    ///
    /// ```
    /// use encoder_bench::data::{Encoded, Padding};
    /// let enc = Encoded { ids: vec![vec![101, 7, 102], vec![101, 102]], type_ids: vec![vec![0; 3], vec![0; 2]],
    ///                     targets: vec![1, 0], pad_id: 0, max_len: 8 };
    /// let b = enc.batches(2, Padding::Dynamic, None, tch::Device::Cpu)?.next().unwrap();
    /// assert_eq!(b.ids.size(), vec![2, 3]);
    /// assert_eq!(Vec::<i64>::try_from(b.mask.view(-1)).unwrap(), vec![1, 1, 1, 1, 1, 0]);
    /// # Ok::<(), encoder_bench::Error>(())
    /// ```
    pub fn batches(&self, batch_size: usize, padding: Padding, shuffle: Option<u64>, device: Device) -> Result<Batches<'_>> {
        if batch_size == 0 {
            return Err(Error::invalid("batch_size", "expected at least 1"));
        }
        crate::device::check_transfer(tch::Kind::Int64, device)?;
        let order = self.batch_order(batch_size, padding, shuffle);
        Ok(Batches { enc: self, order, pos: 0, batch_size, padding, device })
    }
}

/// Iterator over the [`Batch`]es of an [`Encoded`] set.
pub struct Batches<'a> {
    enc: &'a Encoded,
    order: Vec<usize>,
    pos: usize,
    batch_size: usize,
    padding: Padding,
    device: Device,
}

impl Batches<'_> {
    /// Skips `n` batches without building them (to resume inside an epoch).
    pub fn advance(&mut self, n: usize) {
        self.pos = (self.pos + n * self.batch_size).min(self.order.len());
    }
}

impl Iterator for Batches<'_> {
    type Item = Batch;

    fn next(&mut self) -> Option<Batch> {
        if self.pos >= self.order.len() {
            return None;
        }
        let end = (self.pos + self.batch_size).min(self.order.len());
        let batch = self.enc.batch(&self.order[self.pos..end], self.padding, self.device);
        self.pos = end;
        Some(batch)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let left = (self.order.len() - self.pos).div_ceil(self.batch_size);
        (left, Some(left))
    }
}

impl ExactSizeIterator for Batches<'_> {}

#[cfg(test)]
mod tests {
    use super::*;

    fn toy(n: usize) -> Encoded {
        let ids: Vec<Vec<i64>> = (0..n).map(|i| (0..(2 + i % 5) as i64).collect()).collect();
        Encoded { type_ids: ids.iter().map(|v| vec![0; v.len()]).collect(), targets: (0..n as i64).collect(), ids, pad_id: 0, max_len: 8 }
    }

    fn targets(b: &Batch) -> Vec<i64> {
        Vec::<i64>::try_from(&b.targets).unwrap()
    }

    #[test]
    fn keeps_last_partial_batch_and_every_example_once() {
        let enc = toy(10);
        let bs: Vec<Batch> = enc.batches(4, Padding::MaxLen, Some(3), Device::Cpu).unwrap().collect();
        assert_eq!(bs.iter().map(Batch::size).collect::<Vec<_>>(), vec![4, 4, 2]);
        let mut all: Vec<i64> = bs.iter().flat_map(targets).collect();
        all.sort();
        assert_eq!(all, (0..10).collect::<Vec<_>>());
        assert!(bs.iter().all(|b| b.ids.size()[1] == 8));
    }

    #[test]
    fn shuffle_is_seeded() {
        let enc = toy(20);
        let order = |s| enc.batches(20, Padding::Dynamic, Some(s), Device::Cpu).unwrap().flat_map(|b| targets(&b)).collect::<Vec<_>>();
        assert_eq!(order(1), order(1));
        assert_ne!(order(1), order(2));
        assert_ne!(order(1), (0..20).collect::<Vec<_>>());
    }

    #[test]
    fn dynamic_padding_is_longest_in_batch_and_mask_matches_lengths() {
        let enc = toy(3); // lengths 2, 3, 4
        let b = enc.batches(3, Padding::Dynamic, None, Device::Cpu).unwrap().next().unwrap();
        assert_eq!(b.ids.size(), vec![3, 4]);
        let lens = Vec::<i64>::try_from(b.mask.sum_dim_intlist(1, false, tch::Kind::Int64)).unwrap();
        assert_eq!(lens, vec![2, 3, 4]);
    }

    #[test]
    fn bucketed_batches_cover_every_example_once_with_less_padding() {
        let enc = toy(400); // lengths 2..=6
        for shuffle in [None, Some(7)] {
            let bs: Vec<Batch> = enc.batches(8, Padding::Bucketed, shuffle, Device::Cpu).unwrap().collect();
            let mut all: Vec<i64> = bs.iter().flat_map(targets).collect();
            all.sort();
            assert_eq!(all, (0..400).collect::<Vec<_>>());
            let padded = |p| enc.batch_widths(8, p, shuffle).iter().sum::<usize>();
            assert!(padded(Padding::Bucketed) < padded(Padding::Dynamic), "{shuffle:?}");
            let real: usize = enc.ids.iter().map(Vec::len).sum();
            // Sorted windows of 50 batches leave (almost) no padding here.
            assert!(padded(Padding::Bucketed) * 8 <= real + 8 * 8, "{shuffle:?}");
            for b in &bs {
                let w = b.ids.size()[1] as usize;
                assert_eq!(w, b.indices.iter().map(|&i| enc.ids[i].len()).max().unwrap());
                assert_eq!(targets(b), b.indices.iter().map(|&i| i as i64).collect::<Vec<_>>());
            }
        }
        let order = |s| enc.batch_order(8, Padding::Bucketed, Some(s));
        assert_eq!(order(1), order(1));
        assert_ne!(order(1), order(2), "the shuffle still decides which texts share a window");
    }
}
