package cql

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/gocql/gocql"

	guildhall "github.com/guildhall/guildhall"
)

func (s *Store) PutGuild(ctx context.Context, g guildhall.Guild) error {
	g.MemberCount = 0 // the counter table owns it
	data, err := json.Marshal(g)
	if err != nil {
		return err
	}
	return s.write(ctx, `INSERT INTO {ks}.guilds (id, data) VALUES (?, ?)`, cqlID(g.ID), data)
}

func (s *Store) Guild(ctx context.Context, gid guildhall.Snowflake) (guildhall.Guild, error) {
	var g guildhall.Guild
	var data []byte
	if err := s.query(ctx, `SELECT data FROM {ks}.guilds WHERE id = ?`, cqlID(gid)).Scan(&data); err != nil {
		return g, cqlNotFound(err, "guild %v", gid)
	}
	if err := json.Unmarshal(data, &g); err != nil {
		return g, fmt.Errorf("guild %v: %w", gid, err)
	}
	g.ID = gid
	n, err := s.MemberCount(ctx, gid)
	if err != nil {
		return g, err
	}
	g.MemberCount = n
	return g, nil
}

func (s *Store) PutChannel(ctx context.Context, c guildhall.Channel) error {
	data, err := json.Marshal(c)
	if err != nil {
		return err
	}
	// A channel that moved to another guild leaves its old listing.
	var oldGuild int64
	err = s.query(ctx, `SELECT guild_id FROM {ks}.channels WHERE id = ?`, cqlID(c.ID)).Scan(&oldGuild)
	switch {
	case errors.Is(err, gocql.ErrNotFound):
	case err != nil:
		return fmt.Errorf("put channel %v: %w", c.ID, err)
	case oldGuild != cqlID(c.GuildID):
		if err := s.write(ctx, `DELETE FROM {ks}.channels_by_guild WHERE guild_id = ? AND channel_id = ?`, oldGuild, cqlID(c.ID)); err != nil {
			return fmt.Errorf("put channel %v: %w", c.ID, err)
		}
	}
	// Both rows or neither: a logged batch (rare writes, two partitions).
	b := s.s.NewBatch(gocql.LoggedBatch).WithContext(ctx)
	b.Entries = append(b.Entries,
		gocql.BatchEntry{Stmt: s.cql(`INSERT INTO {ks}.channels (id, guild_id, data) VALUES (?, ?, ?)`),
			Args: []any{cqlID(c.ID), cqlID(c.GuildID), data}, Idempotent: true},
		gocql.BatchEntry{Stmt: s.cql(`INSERT INTO {ks}.channels_by_guild (guild_id, channel_id, data) VALUES (?, ?, ?)`),
			Args: []any{cqlID(c.GuildID), cqlID(c.ID), data}, Idempotent: true})
	if err := s.s.ExecuteBatch(b); err != nil {
		return fmt.Errorf("put channel %v: %w", c.ID, err)
	}
	return nil
}

func (s *Store) Channel(ctx context.Context, cid guildhall.Snowflake) (guildhall.Channel, error) {
	var c guildhall.Channel
	var data []byte
	if err := s.query(ctx, `SELECT data FROM {ks}.channels WHERE id = ?`, cqlID(cid)).Scan(&data); err != nil {
		return c, cqlNotFound(err, "channel %v", cid)
	}
	if err := json.Unmarshal(data, &c); err != nil {
		return c, fmt.Errorf("channel %v: %w", cid, err)
	}
	return c, nil
}

func (s *Store) Channels(ctx context.Context, guildID guildhall.Snowflake) ([]guildhall.Channel, error) {
	out := []guildhall.Channel{}
	iter := s.query(ctx, `SELECT data FROM {ks}.channels_by_guild WHERE guild_id = ?`, cqlID(guildID)).Iter()
	var data []byte
	for iter.Scan(&data) {
		var c guildhall.Channel
		if err := json.Unmarshal(data, &c); err != nil {
			iter.Close()
			return nil, fmt.Errorf("channels of guild %v: %w", guildID, err)
		}
		out = append(out, c)
	}
	if err := iter.Close(); err != nil {
		return nil, fmt.Errorf("channels of guild %v: %w", guildID, err)
	}
	guildhall.SortChannels(out)
	return out, nil
}

func (s *Store) PutRole(ctx context.Context, guildID guildhall.Snowflake, r guildhall.Role) error {
	data, err := json.Marshal(r)
	if err != nil {
		return err
	}
	return s.write(ctx, `INSERT INTO {ks}.roles (guild_id, role_id, data) VALUES (?, ?, ?)`, cqlID(guildID), cqlID(r.ID), data)
}

// Roles lists a guild's roles by id ascending.
func (s *Store) Roles(ctx context.Context, guildID guildhall.Snowflake) ([]guildhall.Role, error) {
	out := []guildhall.Role{}
	iter := s.query(ctx, `SELECT data FROM {ks}.roles WHERE guild_id = ?`, cqlID(guildID)).Iter()
	var data []byte
	for iter.Scan(&data) {
		var r guildhall.Role
		if err := json.Unmarshal(data, &r); err != nil {
			iter.Close()
			return nil, fmt.Errorf("roles of guild %v: %w", guildID, err)
		}
		out = append(out, r)
	}
	if err := iter.Close(); err != nil {
		return nil, fmt.Errorf("roles of guild %v: %w", guildID, err)
	}
	return out, nil
}
