-- HA admission control: one counter, compare-and-swapped by every write that admission control checked
-- (a server created, HA switched on), so two checks made on the same state cannot both commit.
CREATE TABLE ha_admission (
  id INTEGER PRIMARY KEY CHECK (id = 1),
  generation INTEGER NOT NULL
);
INSERT INTO ha_admission(id, generation) VALUES (1, 0);
