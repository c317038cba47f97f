package cql

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/gocql/gocql"

	guildhall "github.com/guildhall/guildhall"
	"github.com/guildhall/guildhall/messaging"
)

func (s *Store) PutInvite(ctx context.Context, inv guildhall.Invite) error {
	if err := s.write(ctx, `INSERT INTO {ks}.invites_by_guild (guild_id, code) VALUES (?, ?)`, cqlID(inv.GuildID), inv.Code); err != nil {
		return err
	}
	return s.putInviteData(ctx, inv)
}

// putInviteData writes the invite's row alone: JoinGuild's update of one that
// is indexed already.
func (s *Store) putInviteData(ctx context.Context, inv guildhall.Invite) error {
	data, err := json.Marshal(inv)
	if err != nil {
		return err
	}
	return s.write(ctx, `INSERT INTO {ks}.invites (code, data) VALUES (?, ?)`, inv.Code, data)
}

// JoinGuild reads the invite and the membership at once, then writes the member
// and the counted invite at once. Not a logged batch: the membership's
// create-if-absent (LWT) and the member counter cannot share a batch with other
// tables. If one write fails the join fails; a use counted without its member only
// uses the invite up sooner.
func (s *Store) JoinGuild(ctx context.Context, m guildhall.Member, code string) (guildhall.Invite, bool, error) {
	unlock := s.joins.lock(code)
	defer unlock()
	var inv guildhall.Invite
	var exists bool
	err := cqlParallel(
		func() (err error) { inv, err = s.Invite(ctx, code); return err },
		func() error {
			var one int64
			err := s.query(ctx, `SELECT user_id FROM {ks}.members WHERE guild_id = ? AND bucket = ? AND user_id = ?`,
				cqlID(m.GuildID), cqlMemberBucket(m.User.ID), cqlID(m.User.ID)).Scan(&one)
			exists = err == nil
			if errors.Is(err, gocql.ErrNotFound) {
				return nil
			}
			return err
		},
	)
	if err != nil {
		return guildhall.Invite{}, false, err
	}
	if exists {
		return inv, false, nil
	}
	if inv.MaxUses > 0 && inv.Uses >= inv.MaxUses {
		return guildhall.Invite{}, false, fmt.Errorf("invite %q: %w", code, messaging.ErrInviteUsedUp)
	}
	inv.Uses++
	err = cqlParallel(
		func() error { return s.PutMember(ctx, m) },
		func() error { return s.putInviteData(ctx, inv) },
	)
	if err != nil {
		return guildhall.Invite{}, false, err
	}
	return inv, true, nil
}

func (s *Store) Invite(ctx context.Context, code string) (guildhall.Invite, error) {
	var inv guildhall.Invite
	var data []byte
	if err := s.query(ctx, `SELECT data FROM {ks}.invites WHERE code = ?`, code).Scan(&data); err != nil {
		return inv, cqlNotFound(err, "invite %q", code)
	}
	if err := json.Unmarshal(data, &inv); err != nil {
		return inv, fmt.Errorf("invite %q: %w", code, err)
	}
	return inv, nil
}

func (s *Store) inviteCodes(ctx context.Context, guildID guildhall.Snowflake) ([]string, error) {
	var codes []string
	iter := s.query(ctx, `SELECT code FROM {ks}.invites_by_guild WHERE guild_id = ?`, cqlID(guildID)).Iter()
	var code string
	for iter.Scan(&code) {
		codes = append(codes, code)
	}
	if err := iter.Close(); err != nil {
		return nil, fmt.Errorf("invites of guild %v: %w", guildID, err)
	}
	return codes, nil
}

func (s *Store) GuildInvites(ctx context.Context, guildID guildhall.Snowflake) ([]guildhall.Invite, error) {
	codes, err := s.inviteCodes(ctx, guildID)
	if err != nil {
		return nil, err
	}
	invs := make([]guildhall.Invite, len(codes))
	found := make([]bool, len(codes))
	err = s.eachParallel(len(codes), func(i int) error {
		inv, err := s.Invite(ctx, codes[i])
		if errors.Is(err, messaging.ErrNotFound) {
			return nil // deleted between the two reads
		}
		invs[i], found[i] = inv, err == nil
		return err
	})
	if err != nil {
		return nil, err
	}
	out := make([]guildhall.Invite, 0, len(invs))
	for i, inv := range invs {
		if found[i] {
			out = append(out, inv)
		}
	}
	return out, nil
}

func (s *Store) DeleteInvite(ctx context.Context, code string) error {
	inv, err := s.Invite(ctx, code)
	if err != nil {
		return err
	}
	return cqlParallel(
		func() error { return s.write(ctx, `DELETE FROM {ks}.invites WHERE code = ?`, code) },
		func() error {
			return s.write(ctx, `DELETE FROM {ks}.invites_by_guild WHERE guild_id = ? AND code = ?`, cqlID(inv.GuildID), code)
		},
	)
}
