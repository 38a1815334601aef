package ddl

import (
	"encoding/json"
	"fmt"
)

// opDoc is an operation as stored: its kind and its fields.
type opDoc struct {
	Kind string          `json:"kind"`
	Op   json.RawMessage `json:"op"`
}

func kindOf(o Op) (string, error) {
	switch o.(type) {
	case AddColumn:
		return "add_column", nil
	case AddTable:
		return "add_table", nil
	case CreateIndex:
		return "create_index", nil
	case DropIndex:
		return "drop_index", nil
	case AddForeignKey:
		return "add_foreign_key", nil
	case AddCheck:
		return "add_check", nil
	case SetNotNull:
		return "set_not_null", nil
	case AddUnique:
		return "add_unique", nil
	case DropColumn:
		return "drop_column", nil
	case DropTable:
		return "drop_table", nil
	}
	return "", fmt.Errorf("%w: %T is not an operation of this package", ErrInvalidOp, o)
}

// MarshalOps encodes operations so that a process without the plan's code
// (the CLI, a status board) can run them.
func MarshalOps(ops []Op) ([]byte, error) {
	docs := make([]opDoc, len(ops))
	for i, o := range ops {
		kind, err := kindOf(o)
		if err != nil {
			return nil, err
		}
		b, err := json.Marshal(o)
		if err != nil {
			return nil, err
		}
		docs[i] = opDoc{Kind: kind, Op: b}
	}
	return json.Marshal(docs)
}

// UnmarshalOps decodes what MarshalOps encoded.
func UnmarshalOps(b []byte) ([]Op, error) {
	var docs []opDoc
	if err := json.Unmarshal(b, &docs); err != nil {
		return nil, fmt.Errorf("decode operations: %w", err)
	}
	ops := make([]Op, len(docs))
	for i, d := range docs {
		var o Op
		var err error
		switch d.Kind {
		case "add_column":
			o, err = decode[AddColumn](d.Op)
		case "add_table":
			o, err = decode[AddTable](d.Op)
		case "create_index":
			o, err = decode[CreateIndex](d.Op)
		case "drop_index":
			o, err = decode[DropIndex](d.Op)
		case "add_foreign_key":
			o, err = decode[AddForeignKey](d.Op)
		case "add_check":
			o, err = decode[AddCheck](d.Op)
		case "set_not_null":
			o, err = decode[SetNotNull](d.Op)
		case "add_unique":
			o, err = decode[AddUnique](d.Op)
		case "drop_column":
			o, err = decode[DropColumn](d.Op)
		case "drop_table":
			o, err = decode[DropTable](d.Op)
		default:
			err = fmt.Errorf("%w: unknown kind %q", ErrInvalidOp, d.Kind)
		}
		if err != nil {
			return nil, fmt.Errorf("decode operation %d: %w", i+1, err)
		}
		ops[i] = o
	}
	return ops, nil
}

func decode[T Op](b json.RawMessage) (Op, error) {
	var v T
	err := json.Unmarshal(b, &v)
	return v, err
}
