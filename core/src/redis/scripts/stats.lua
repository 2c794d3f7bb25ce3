-- stats: one consistent snapshot of a queue's counts.
-- KEYS[1] scheduled  KEYS[2] pending  KEYS[3] active  KEYS[4] dead
return {redis.call('ZCARD', KEYS[1]), redis.call('ZCARD', KEYS[2]),
        redis.call('ZCARD', KEYS[3]), redis.call('ZCARD', KEYS[4])}
