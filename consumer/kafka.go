package consumer

import "github.com/hookline/hookline/internal/kafkaconf"

// KafkaConfig is the type of Config.Kafka: the connection settings of a
// Kafka client, the same type as producer.KafkaConfig (see there for its
// fields and its Opts and FillFromEnv methods). Brokers is required; the
// rest is optional (TLS, SASL, client id "hookline", a 10s dial timeout).
type KafkaConfig = kafkaconf.Config
