mod mock_ai;
