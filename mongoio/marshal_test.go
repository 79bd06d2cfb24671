package mongoio

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.mongodb.org/mongo-driver/v2/bson"
)

// TestMarshalRouteFullDocument checks the document an insert sends: the
// whole document with its _id, first when Route.ID supplies it.
func TestMarshalRouteFullDocument(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		route Route
		want  bson.D
	}{
		{
			name:  "ID from the route",
			route: Route{ID: int64(7), Doc: bson.D{{Key: "a", Value: 1}, {Key: "b", Value: "x"}}},
			want:  bson.D{{Key: "_id", Value: int64(7)}, {Key: "a", Value: int32(1)}, {Key: "b", Value: "x"}},
		},
		{
			name:  "string ID into an empty document",
			route: Route{ID: "BTCUSDT|2025", Doc: bson.D{}},
			want:  bson.D{{Key: "_id", Value: "BTCUSDT|2025"}},
		},
		{
			name:  "ID in the document",
			route: Route{Doc: bson.D{{Key: "a", Value: 1}, {Key: "_id", Value: "k"}}},
			want:  bson.D{{Key: "a", Value: int32(1)}, {Key: "_id", Value: "k"}},
		},
		{
			name:  "both",
			route: Route{ID: "k", Doc: bson.D{{Key: "_id", Value: "k"}, {Key: "a", Value: 1}}},
			want:  bson.D{{Key: "_id", Value: "k"}, {Key: "a", Value: int32(1)}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			doc, full, id, err := marshalRoute(tt.route)
			require.NoError(t, err, "marshalRoute")
			require.NoError(t, full.Validate(), "the full document is valid BSON")
			var got bson.D
			require.NoError(t, bson.Unmarshal(full, &got), "unmarshal")
			assert.Equal(t, tt.want, got, "full document")
			assert.True(t, full.Lookup("_id").Equal(id), "its _id is the upsert's")
			var replacement bson.D
			require.NoError(t, bson.Unmarshal(doc, &replacement), "unmarshal the replacement")
			want, err := bson.Marshal(tt.route.Doc)
			require.NoError(t, err, "marshal")
			assert.Equal(t, bson.Raw(want), doc, "the replacement is Doc as given")
		})
	}
}
