package tmp

import (
	_ "github.com/FerretDB/FerretDB/ferretdb"
	_ "github.com/IBM/sarama"
	_ "github.com/stretchr/testify/require"
	_ "github.com/twmb/franz-go/pkg/kfake"
	_ "go.mongodb.org/mongo-driver/v2/mongo"
)
