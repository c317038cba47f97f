// A virtualised list of rows with variable heights: only the rows in and near the
// viewport are in the DOM (a channel of 10,000 messages keeps ~40 rows), each
// absolutely positioned at the sum of the heights before it. Heights start as
// estimates and become measurements once a row has been drawn; when they change
// the list keeps what the reader looks at in place (the first visible row, or the
// bottom when the reader was at the bottom), so prepending older history or a
// late-measured row never makes the view jump.

const overscanPx = 600;
const stickyPx = 24;
const startMarginPx = 24; // above a row scrolled to the top (scrollToKey 'start')

export class VirtualList {
  /**
   * @param {HTMLElement} scroller  the element that scrolls (overflow-y: auto)
   * @param {object} o
   * @param {(item, index, items) => string} o.key  stable identity of a row
   * @param {(item, index, items) => string} o.signature  changes when a row must be redrawn
   * @param {(item, index, items, el?) => HTMLElement} o.render  draws a row (el: the old one)
   * @param {(item, index, items) => number} o.estimate  height before measuring
   * @param {() => void} [o.onNearTop]  the reader is near the oldest loaded row
   * @param {() => void} [o.onNearBottom]  the reader is near the newest loaded row
   * @param {() => void} [o.onScroll]
   */
  constructor(scroller, o) {
    this.scroller = scroller;
    this.o = o;
    this.canvas = document.createElement('div');
    this.canvas.className = 'vlist-canvas';
    scroller.append(this.canvas);
    this.items = [];
    this.keys = [];
    this.keyIndex = new Map();
    this.heights = new Map(); // key -> {h, sig}
    this.offsets = new Float64Array(1);
    this.rows = new Map(); // key -> {el, sig, index}
    this.atBottom = true;
    this.frame = 0;
    this.width = 0;
    scroller.addEventListener('scroll', () => this.onScroll(), { passive: true });
    this.resizer = new ResizeObserver(() => {
      const w = this.scroller.clientWidth;
      if (w !== this.width) {
        this.width = w;
        // Text wraps differently now: measured heights become estimates again.
        for (const v of this.heights.values()) v.stale = true;
      }
      this.schedule();
    });
    this.resizer.observe(scroller);
  }

  onScroll() {
    const s = this.scroller;
    this.atBottom = s.scrollHeight - s.scrollTop - s.clientHeight <= stickyPx;
    this.schedule();
    this.o.onScroll?.();
  }

  /**
   * Replaces the rows. With {reset: true} the view starts at the bottom; with
   * {keepTop: true} the first visible row stays in place even at the bottom
   * (rows appended below, as newer history, must not scroll the reader past them).
   */
  setItems(items, { reset = false, keepTop = false } = {}) {
    if (keepTop && !reset) this.atBottom = false;
    const anchor = reset ? null : this.captureAnchor();
    this.items = items;
    this.keys = items.map((it, i) => this.o.key(it, i, items));
    this.keyIndex = new Map(this.keys.map((k, i) => [k, i]));
    if (reset) {
      this.atBottom = true;
      for (const r of this.rows.values()) r.el.remove();
      this.rows.clear();
    }
    this.layout(anchor);
  }

  scrollToBottom() {
    this.atBottom = true;
    this.layout(null);
  }

  /** Scrolls so the row with key k is visible (block: 'start', 'center', 'end' or 'nearest'). */
  scrollToKey(k, block = 'center') {
    const i = this.keyIndex.get(k) ?? -1;
    if (i < 0) return;
    const top = this.offsets[i];
    const h = this.offsets[i + 1] - top;
    const s = this.scroller;
    let target = block === 'end' ? top + h - s.clientHeight : top - (s.clientHeight - h) / 2;
    if (block === 'start') target = top - startMarginPx;
    if (block === 'nearest') {
      if (top >= s.scrollTop && top + h <= s.scrollTop + s.clientHeight) return;
      target = top < s.scrollTop ? top : top + h - s.clientHeight;
    }
    this.atBottom = false;
    this.setScroll(Math.max(0, target));
    this.layout(this.captureAnchor());
    // A short list cannot scroll at all, and then no scroll event says where the
    // reader is: look.
    this.atBottom = s.scrollHeight - s.scrollTop - s.clientHeight <= stickyPx;
  }

  schedule() {
    if (this.frame) return;
    this.frame = requestAnimationFrame(() => {
      this.frame = 0;
      this.layout(this.captureAnchor());
    });
  }

  /** What to keep in place: the bottom, or the first visible row and its offset. */
  captureAnchor() {
    if (this.atBottom || !this.keys.length) return null;
    const top = this.scroller.scrollTop;
    const i = this.indexAt(top);
    if (i < 0 || i >= this.keys.length) return null;
    return { key: this.keys[i], delta: top - this.offsets[i] };
  }

  indexAt(y) {
    // The last index whose offset is <= y.
    let lo = 0;
    let hi = this.items.length - 1;
    let ans = 0;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      if (this.offsets[mid] <= y) {
        ans = mid;
        lo = mid + 1;
      } else hi = mid - 1;
    }
    return ans;
  }

  heightOf(i) {
    // A measured height stands until the row is drawn again (drawRange measures
    // it then): checking every row's signature here would cost O(rows) per frame.
    const m = this.heights.get(this.keys[i]);
    return m ? m.h : this.o.estimate(this.items[i], i, this.items);
  }

  computeOffsets() {
    const n = this.items.length;
    if (this.offsets.length !== n + 1) this.offsets = new Float64Array(n + 1);
    let y = 0;
    for (let i = 0; i < n; i++) {
      this.offsets[i] = y;
      y += this.heightOf(i);
    }
    this.offsets[n] = y;
  }

  setScroll(top) {
    const s = this.scroller;
    if (Math.abs(s.scrollTop - top) >= 0.5) s.scrollTop = top;
  }

  layout(anchor) {
    const s = this.scroller;
    for (let pass = 0; pass < 4; pass++) {
      this.computeOffsets();
      const total = this.offsets[this.items.length];
      this.canvas.style.height = `${total}px`;
      // Restore the anchor against the current offsets.
      let top;
      if (this.atBottom || !anchor) {
        top = Math.max(0, total - s.clientHeight);
      } else {
        const i = this.keyIndex.get(anchor.key) ?? -1;
        top = i >= 0 ? this.offsets[i] + anchor.delta : s.scrollTop;
      }
      this.setScroll(top);
      top = s.scrollTop;
      if (!this.drawRange(top - overscanPx, top + s.clientHeight + overscanPx)) break;
    }
    if (s.scrollTop < overscanPx * 2 && this.o.onNearTop && this.items.length) this.o.onNearTop();
    if (this.o.onNearBottom && this.items.length && this.offsets[this.items.length] - s.scrollTop - s.clientHeight < overscanPx * 2) this.o.onNearBottom();
  }

  /** Draws the rows between y0 and y1; reports whether any measured height changed. */
  drawRange(y0, y1) {
    const n = this.items.length;
    const wanted = new Set();
    const fresh = [];
    if (n) {
      const first = this.indexAt(Math.max(0, y0));
      for (let i = first; i < n && this.offsets[i] < y1; i++) {
        const k = this.keys[i];
        const item = this.items[i];
        const sig = this.o.signature(item, i, this.items);
        wanted.add(k);
        let r = this.rows.get(k);
        if (!r || r.sig !== sig) {
          const el = this.o.render(item, i, this.items, r?.el);
          el.classList.add('vlist-row');
          if (r && r.el !== el) r.el.replaceWith(el);
          else if (!r) this.canvas.append(el);
          r = { el, sig, index: i };
          this.rows.set(k, r);
          fresh.push(i);
        } else if (this.heights.get(k)?.stale) {
          fresh.push(i);
        }
        r.index = i;
        r.el.style.transform = `translateY(${this.offsets[i]}px)`;
        r.el.setAttribute('aria-posinset', String(i + 1));
        r.el.setAttribute('aria-setsize', String(n));
      }
    }
    for (const [k, r] of this.rows) {
      if (!wanted.has(k)) {
        r.el.remove();
        this.rows.delete(k);
      }
    }
    // Measure after all writes: one layout for the batch.
    let changed = false;
    for (const i of fresh) {
      const k = this.keys[i];
      const r = this.rows.get(k);
      const h = r.el.offsetHeight;
      const old = this.heights.get(k);
      if (!old || old.h !== h || old.sig !== r.sig || old.stale) {
        if (!old || old.h !== h) changed = true;
        this.heights.set(k, { h, sig: r.sig, stale: false });
      }
    }
    if (this.heights.size > this.items.length * 2 + 1000) this.pruneHeights();
    return changed;
  }

  pruneHeights() {
    const live = new Set(this.keys);
    for (const k of this.heights.keys()) if (!live.has(k)) this.heights.delete(k);
  }

  /** The row element of key k, when drawn. */
  rowEl(k) {
    return this.rows.get(k)?.el || null;
  }
}
