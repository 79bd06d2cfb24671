// Package ring provides a growable ring-buffer deque, the storage behind the
// sequencer, the join, the trailing windows and the lookahead. It is not public API.
package ring

// Deque is a double-ended queue over a power-of-two ring buffer. The zero value is
// an empty deque ready to use. It grows by doubling and never shrinks, so a deque
// that has reached its steady-state size does not allocate again.
// A Deque is not safe for concurrent use.
type Deque[T any] struct {
	buf  []T
	head int
	n    int
}

// Len reports the number of elements.
func (d *Deque[T]) Len() int { return d.n }

// At returns a pointer to the i-th element from the front (0 is the front). The
// pointer is valid until the next call that adds or removes elements.
func (d *Deque[T]) At(i int) *T {
	if uint(i) >= uint(d.n) {
		panic("ring: index out of range")
	}
	return &d.buf[(d.head+i)&(len(d.buf)-1)]
}

// Front returns a pointer to the first element; the deque must not be empty.
func (d *Deque[T]) Front() *T { return d.At(0) }

// Back returns a pointer to the last element; the deque must not be empty.
func (d *Deque[T]) Back() *T { return d.At(d.n - 1) }

// PushBack appends v at the back.
func (d *Deque[T]) PushBack(v T) {
	if d.n == len(d.buf) {
		d.grow()
	}
	d.buf[(d.head+d.n)&(len(d.buf)-1)] = v
	d.n++
}

// PopFront removes and returns the front element; the deque must not be empty.
func (d *Deque[T]) PopFront() T {
	if d.n == 0 {
		panic("ring: PopFront of empty deque")
	}
	var zero T
	v := d.buf[d.head]
	d.buf[d.head] = zero
	d.head = (d.head + 1) & (len(d.buf) - 1)
	d.n--
	return v
}

// PopBack removes and returns the back element; the deque must not be empty.
func (d *Deque[T]) PopBack() T {
	if d.n == 0 {
		panic("ring: PopBack of empty deque")
	}
	var zero T
	i := (d.head + d.n - 1) & (len(d.buf) - 1)
	v := d.buf[i]
	d.buf[i] = zero
	d.n--
	return v
}

// Insert puts v at position i (0 <= i <= Len), shifting the elements after it one
// place towards the back. It costs O(Len - i): cheap when inserting near the back,
// which is where nearly-ordered streams insert.
func (d *Deque[T]) Insert(i int, v T) {
	if uint(i) > uint(d.n) {
		panic("ring: insert index out of range")
	}
	if d.n == len(d.buf) {
		d.grow()
	}
	mask := len(d.buf) - 1
	for j := d.n; j > i; j-- {
		d.buf[(d.head+j)&mask] = d.buf[(d.head+j-1)&mask]
	}
	d.buf[(d.head+i)&mask] = v
	d.n++
}

// Clear removes every element, keeping the capacity.
func (d *Deque[T]) Clear() {
	var zero T
	for i := 0; i < d.n; i++ {
		d.buf[(d.head+i)&(len(d.buf)-1)] = zero
	}
	d.head, d.n = 0, 0
}

func (d *Deque[T]) grow() {
	size := 2 * len(d.buf)
	if size == 0 {
		size = 8
	}
	buf := make([]T, size)
	if d.n > 0 {
		m := copy(buf, d.buf[d.head:])
		if m < d.n {
			copy(buf[m:], d.buf[:d.n-m])
		}
	}
	d.buf, d.head = buf, 0
}
