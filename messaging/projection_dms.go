package messaging

import (
	"container/list"
	"sync"

	guildhall "github.com/guildhall/guildhall"
)

// DM channels. The two people of a DM are fixed when it is opened (a DM
// cannot be left, nor deleted), so what the store says of a DM stays true:
// the api keeps the DMs it has read, and a post, an edit, a reaction or typing
// in one of them needs no store read after the first, and goes on during a
// store outage. Group DMs are not kept: someone may leave one through any api
// process, and a kept copy elsewhere would let them go on reading and posting;
// each use of a group DM reads it from the store. Only found DMs are kept: a DM opened on
// another api process after this one was asked about its id is then read from
// the store (which has it before its CHANNEL_CREATE is published), never
// answered "unknown" from memory. Unlike guilds, DMs need no events: their
// log subjects (gh.in.d.*) carry only messages, reactions and typing.

// dmCache is a bounded LRU of DM channels read from the store.
type dmCache struct {
	max  int
	mu   sync.Mutex
	lru  *list.List // of *guildhall.PrivateChannel, most recently used first
	byID map[guildhall.Snowflake]*list.Element
}

func newDMCache(max int) *dmCache {
	return &dmCache{max: max, lru: list.New(), byID: map[guildhall.Snowflake]*list.Element{}}
}

// get returns a kept DM; callers must not change it.
func (c *dmCache) get(id guildhall.Snowflake) (*guildhall.PrivateChannel, bool) {
	if c.max < 0 {
		return nil, false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	e := c.byID[id]
	if e == nil {
		return nil, false
	}
	c.lru.MoveToFront(e)
	return e.Value.(*guildhall.PrivateChannel), true
}

// put keeps a DM read from the store (the least recently used goes when there
// are too many).
func (c *dmCache) put(dm *guildhall.PrivateChannel) {
	if c.max < 0 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if e := c.byID[dm.ID]; e != nil {
		c.lru.MoveToFront(e)
		return
	}
	c.byID[dm.ID] = c.lru.PushFront(dm)
	for c.lru.Len() > c.max {
		last := c.lru.Back()
		delete(c.byID, last.Value.(*guildhall.PrivateChannel).ID)
		c.lru.Remove(last)
	}
}

func (c *dmCache) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.lru.Len()
}
