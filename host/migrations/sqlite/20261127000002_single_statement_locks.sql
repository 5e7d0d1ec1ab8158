-- Every lock operation in one statement (one round trip, its own write
-- transaction): the token counter follows the tokens handed out, and a lease
-- goes away when its last hold is released.

CREATE TRIGGER IF NOT EXISTS locks_counter_after_insert AFTER INSERT ON locks
BEGIN
    UPDATE lock_counter SET value = NEW.token WHERE id = 1 AND value < NEW.token;
END;

CREATE TRIGGER IF NOT EXISTS locks_counter_after_update AFTER UPDATE OF token ON locks
BEGIN
    UPDATE lock_counter SET value = NEW.token WHERE id = 1 AND value < NEW.token;
END;

CREATE TRIGGER IF NOT EXISTS locks_last_hold_released AFTER UPDATE OF holds ON locks
WHEN NEW.holds <= 0
BEGIN
    DELETE FROM locks WHERE resource = NEW.resource;
END;
