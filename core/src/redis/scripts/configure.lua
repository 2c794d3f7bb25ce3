-- configure: store a queue's options, seen by every client.
-- KEYS[1] config hash  ARGV[1] max_len (0: unbounded)
redis.call('HSET', KEYS[1], 'max_len', ARGV[1])
return 0
